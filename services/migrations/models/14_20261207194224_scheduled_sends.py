# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 14_20261207194224_scheduled_sends.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Scheduled send (issue 28): the ``scheduled_sends`` table (a send to be stored and delivered at
``at``, owned by the message service; unique on (sender, cid) as messages are, so a send
scheduled twice is one schedule; read by state and time by the delivery pass, and by sender for
``schedule.list``; the upload keys of an attachment send, which the sweep of unused uploads
asks about). A new table: no existing row is rewritten, on PostgreSQL nor on SQLite.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "scheduled_sends" (
        "id" VARCHAR(26) NOT NULL PRIMARY KEY,
        "sender" VARCHAR(64) NOT NULL,
        "cid" VARCHAR(64) NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "at" BIGINT NOT NULL,
        "command" JSON NOT NULL,
        "created" BIGINT NOT NULL,
        "state" VARCHAR(16) NOT NULL,
        "message_id" VARCHAR(26),
        "error" JSON,
        "done_at" BIGINT,
        "file_key" VARCHAR(64),
        "thumb_key" VARCHAR(64),
        CONSTRAINT "uid_scheduled_s_sender_3d2f36" UNIQUE ("sender", "cid")
        ) /* A send to be stored and delivered at ``at`` (services\/messages\/scheduled.py). */;
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_file_ke_bd60cb" ON "scheduled_sends" ("file_key");
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_thumb_k_cd04d0" ON "scheduled_sends" ("thumb_key");
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_state_4d26e0" ON "scheduled_sends" ("state", "at");
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_sender_721c2f" ON "scheduled_sends" ("sender", "state", "at");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "scheduled_sends" (
        "id" VARCHAR(26) NOT NULL PRIMARY KEY,
        "sender" VARCHAR(64) NOT NULL,
        "cid" VARCHAR(64) NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "at" BIGINT NOT NULL,
        "command" JSONB NOT NULL,
        "created" BIGINT NOT NULL,
        "state" VARCHAR(16) NOT NULL,
        "message_id" VARCHAR(26),
        "error" JSONB,
        "done_at" BIGINT,
        "file_key" VARCHAR(64),
        "thumb_key" VARCHAR(64),
        CONSTRAINT "uid_scheduled_s_sender_3d2f36" UNIQUE ("sender", "cid")
        );
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_file_ke_bd60cb" ON "scheduled_sends" ("file_key");
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_thumb_k_cd04d0" ON "scheduled_sends" ("thumb_key");
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_state_4d26e0" ON "scheduled_sends" ("state", "at");
        CREATE INDEX IF NOT EXISTS "idx_scheduled_s_sender_721c2f" ON "scheduled_sends" ("sender", "state", "at");
        COMMENT ON TABLE "scheduled_sends" IS 'A send to be stored and delivered at ``at`` (services/messages/scheduled.py).';
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "scheduled_sends";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "scheduled_sends";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1z2rgW/isavjSZodmEvF72y03Sdre7bdJp07s70+yAsAWoMZJrySHc3vz3K8k22G"
    "Abi2BiHH1KkM6R7WP5vOnR0c/GiNrIYXvnyMPWsNEGPxsEjpD4Z66nCRrQdWftsoHDnqNI"
    "4Yymx7gHLS5a+9BhSDTZiFkedjmmRLQS33FkI7UEISaDWZNP8A8fdTgdID5Enuj49o9oxs"
    "RGD4hFP927Th8jx07cKrbltVV7h09c1fae8HeKUF6t17Go44/IjNid8CElU2pMuGwdIII8"
    "yJEcnnu+vH15d+FzRk8U3OmMJLjFGI+N+tB3eOxxe51ZW6PTubq+6Xx5e9PpNDQEZFEihS"
    "tulamnH8hbeN06ODo9Ojs8OToTJOo2py2nj8GlZ4IJGJV4rm4aj6ofchhQKBnPhHqPPCZv"
    "aUGyl0PopYs2xjInX3Hj8/KNpJkn4KhhJuHZrNqEiEfwoeMgMuDy02gdH+cI9D/nny9/P/"
    "+8I6h25SWp+AyCr+Mq7GoFfVLqMynLj0pDwiF5DaV7sL9fQLqCKlO6qi8pXXFFjoJPOynh"
    "P75cX6VLOMYyJ2UbWxz8DziYLeiKLZB2jnClMOTII8Z+OHGZ7nw8/3te3Jcfri+UcCjjA0"
    "+Noga4EKKXCrp/F9MmsqEHrbsx9OzOQg9t0Szaxa5RazTfAgkcKEHKJ5bPF5qsN733pE/T"
    "jFnYk2vM8Ggg3mpnhDgsZNEaf6LJL/fQ8ZEgsDgDsEd9DoQNA1K39iBDAHOGnD7YkY3MGq"
    "IRBKGu3N1rzL2+dYz3BFt6hyY6CikkX49Cel57mlBHJ0cFtNHJUaYykl1L7Kt8xVrWNWKo"
    "ofZfm22tiAo69/nw7b20I2ku9bQz36sWZB0k6VgxRXTuuojYrylxJsChA0D7wEP31IKSQO"
    "gRYgMbMzk8a4oeaIPeBIgLeBPQ8+gd8gCn4A5bd8LG3QvFgpjUKGxRQ5V5oTWHARd48FIi"
    "gX+1WoeHp639w5Oz46PT0+Oz/WlIsNiVFxtcvP9NhgeJD215vOCniT9bm/mp0q+DLluX6Z"
    "iJ1kb32NKyFTOOlQQczt5qyvewVUC+h61M+cqupHzvxHNpOT0hfQ0n78FJkSjsJDsIO5kX"
    "bmC9imvlgH65Vt4G0W5MMVfE7Xmj1M6NMPEkzfGJd+e6PoH6Ek6AoCzq/BAALUt4EkBxgT"
    "71ACUiZlJDSRdF/vIZ8n4FynERMRT48vv569bxCcAMME49ZKf4Ousb17g2Ff6Ctse12f6g"
    "+Bk9m8qZiJJdG9eBXKiskY6I4zybE3KjsaUiVnahM4RsqCPkJJfJny1VFZaHpCg6MCWdn2"
    "cKk3zGr9S0irMXgB5c7CGm/QKSfCu9gOXxaF2dkpn4ZYbtboX5n+QrSfwvYfoTi9rytjSU"
    "fJxng5b0OwsW4ctX82cFtPxZppI/m9fxDmS8I2Ip/Vk+z2nm+RamD74yFRUv5A1UezMvYS"
    "Dj72KJglIASM8ZINbQ6cuOxNVfDUlH9LULYw5aRVSvoMrO1LYW1G+4aJeWa6LUQZBkhOQx"
    "tjlB9wRfWZKetmwWLXNxff1BjjxFy1y8n9OpV18/XrwVwleiF0SYZ7gUJqR5ubbukhIJ2Y"
    "GhoBZsXqI/1/ZZMcqCyfJrgkCcrQ26Xbv9Ez62f/Yeu12wc9A+2AXUE82D9s8BtkXjnvih"
    "vCyGfggSzBQkSfwQI/mEI28xd17eZdacSs82IDW11AdHhdCWRzloy6P9ZcbaLKuWGieJb2"
    "KFGCnk2pzR2N96i7Eg+REbdPTUyBxb/UAZrSK4gVY2bqC1gBtQItMFD8SYzAxfbYYbp/SZ"
    "X4CJccuMcemYBMmkouKdMtRPaa9/kW6EiLylDnQcHRnPsdVP0mv2/2Ly6njI0tzilM79pN"
    "1OFRP+JjY7JVAWWGufZEhupnnKNNdIz8S/h1EvXACYc1hCxnd/fkbONJcyJ/gw4/JRDbKF"
    "bspjNL+i1nCaPJaZvwqllZK5mskxO2cVe2EFoJ0KXvmKgZBriF21x0TtLGFcvCiAiYJhxp"
    "NNKVDO1cdJyTd9U4k31SmCun8MkrM6vrRBcm7e85MfkX5KKs5lAvbV4sXvFBO0guyTfEb6"
    "KyYEUX+VVGyMy0BVVobEUUcrUxLRbzBTMpo6Q1vhfSeCTJ9rQwGmPAYHoIEDEPEg0Rb1jM"
    "nIWgdzIZx2zcWbGEsNlybXthS8ELknhb4o8XfUQ3hA/kQTJff34iYhSd3bk4GJ2DK5Z8Xp"
    "otmD42msGJ9vQgbiyVEwmS/Pv1yev3nbeHwexMrHIG3YSA35yXKcSph2LBz0B6YThGxIFZ"
    "GA4idj4v7Sovt8hltySy4mQIR0TQk5gUxF+rQP/g0d5xVrK5yJR8cMdLsJSE23G0BPmOSR"
    "RMF1XjHgExm/3JLoycBOtxvAVmCP3qsyPUFyYQS9O+Tt7oG/PMw5IjLPEIyk7k0MJaRBmB"
    "CIGKYZ7CPtU0+OrAgYGGM+jJ6M/SpGHYkL2EFzciQPWeKBsrMWYUwbfZLSCZ1PXnxb7DW5"
    "jMrlMtKVar4ZMzYs34bFPQXtoG7jkXRNpnhV03NbvzJbEajrx8A2pTsOQdcSxyEwgsUdB0"
    "XfDGsvCHNqIeAKzyCR1hdmfkc2NCW4dFfabGLLNobEBPCawMK2avUQCOZIO9XlKOdSt0Qa"
    "9T72GAcDfC8cgAF0X/c9JDwWT/CIG2iGwFgxsA2wjUYulYUrgRw0s5TWnGVvgm+N4CaUS/"
    "DUdYwXB6NdF+rNGHlj5F+MkZ8pnKKTesZRw2ldQqUEzfSW8aIKi1ZJR0O2EX0NhVtCpTj0"
    "kIJjuxGtGcIN6euAo8qR5c3bv28Sye8FxNpoEvZ8uL76LSKfh7HNbfWEQXnropjBiN6gBF"
    "dHCcYToJpYzbQdDUb2GrI3VSg3Xq7GdVIqyWfP9CmDmearT3MlRBHx6/gocZ6STOn2R+ix"
    "OkA2XmV7VILNQH5WVSt97KCO5hkVcZ7aTfASYpyhP+rpyjjBZIS8VMiuh+4xGusYyBiLMZ"
    "FbeTDRJ5yKnviElyAnXFwcNRHAwqKFCYlvgEu3RSzlkdgJhjxZeZf9Ei3H/CJva8+d7IHr"
    "cYi2iCERQEjfnKEmgnbMgYf6YmjAaRvAWxIAFoBP5HgRMiJofMUAHZM4OGIPnHMwEq9Ylg"
    "nBI8zZnvxSJWu3u7Dy0rwl4xBx4csUoho6TiAu4FDrrmBNkdnqiZi6BhZhYBHVi/XKXzEJ"
    "v2NNDGWSyywELg0zzMLUxmOLwAx2elqOb4KphjqkhPjCpOJeTJW7L9YQ2b6D7C+IJJ2kVI"
    "JcL5hFpB0FcSnqEEtied5cD0UgHXU+HZJHz6lf0pWEXJajW3Rxp9cUfm7KUZ1rHV062bqe"
    "dA9ZVPxsp6CJMAvBREA4s0jw3hLhW3e70dW73aa6V3WwaHC/E8kEg2cKkcXi/i2JmGZUXm"
    "56nk0AdBoPqTzV75aE/MJ75xLspPZSd7ttII8JVFAlFvwDdiwH4lEEzZ5e1oWM7Soq3hRv"
    "EguRiOeQmwEcJ/vwnGXYJdEvb0RNFD4Pdkp0GZTT86KcDCTEQEK2VrQm3iw13tRdaDH155"
    "4YBgmPQvhzKfoiOzUdY3lSarpqL2DTy7dhDUW9CR9jMrN+dVRq5A8W9kAihg1WEwj96cZm"
    "tPnaAX7Pljqs2JJX6RAFz6Mp3nS2/p4ymIXF1ZW3TQnShoXEmAwoxIBCKhvlGFBIvfdoBk"
    "dzfxLqDckSHCmZ2jmKZoHzu9048VoP5pqWMQiPAzblFyukmE35xc3rZ3OQdsmnPFPiYJIi"
    "4NwaXTMmU6NLpx6aObS89EPLzSL8prOqRKtGfES/MeO3bYd6VMRxvqIc97GVeY5foj/XaS"
    "YxSo1z/OJssmiYKmsmC52DHZjs5BSIx5ioTibX8iWlR8cAQWuYgm5Y++hrPrXP+O3Gb992"
    "v71Hba1dkhG9WWZ7+jKbOeLsBSIS4/b40vcYTT3DJIWqsO3uWIqhoAm/GSIgTy1MGlNsgy"
    "EUM0JhC6UhDaJ1sBNC5jBiqlyYB4msDgr7XFhkzFOMeAnjm3zcNn1322PXawULMwm5kjMY"
    "6qhXXfURYzIHnmyd7Q6rhb69R6p2elY10aA/115HmBIkSYtvJQiw79Oin+Osat5zm1aD2u"
    "K278nLAzFxfBRA612fDRcsdknXuSU7Eu7vQGnKGYKeNQRq1orL7spNscwfoT3wRpWbDwH+"
    "YWsmAt9Y+ap8oXlWvjo7NitlktaPuzJx5cu1TZ+Eiv2D9tLMUtSVa5Gkiu58pz2NzK9kkf"
    "Gb2q+1I1U/9XmPPuy2gYfE64nOh5AP+Jr2+8AnHDvhLivbo66LgrMwMLmHDrbTM8ClXCU1"
    "hOTQEz9DhRNTPyaYrMzHlmdmEq9PY2UxzlaW7qvr2zBGfuNG3oUTh0Kt7TExFpO3f0LeHo"
    "ooaOSmQRdydoPNWGoT8bcOjk6Pzg5PjqYaZdqSp0gWlQZBD1zbW40xGXW9MhzEhArPfG6v"
    "zARmbJTJtpdJrhruRTo+LmIvj4+zDabsq1RUdqMczEZGYBb2NpfGZoGfWjA8+0vV3BBRk4"
    "qeJG4GKmBMG0AC3l1+FKHTAMtBQujMHSKyGgc4/3TForW4qBWMUW9I6R34+vnDYohW6pXy"
    "VvrigEs1gInTqqTptmXRr05gnu3BLW9MyGs+kzxQNBrinTLUULbHB0UWVQVVpnxVn3FMn1"
    "1dV8Rb+oyCdcQ0X2nal+speSFVMTdJc8tfMlkV2iU0ot+xcT2qM5fzXI8qJym3v75aVV28"
    "WuG6An2jIdwpQw3Fa/albaWKroi7cSFL76f5GkFHrqPRkySleBmhMlQXQGbxuULTNs+zMB"
    "avvC1K4ZegId4YS/3cNVMRfSu1R0WM3iePytJTaWYv6so1fG5AVILpK2ronlPVVqgq9rrU"
    "QLZNU381JB3R1678xfo1LrwXQtda+Z1x1E68peSRZXlUP8Wu5RdU9dMs2/ZLuJTC2L5rr5"
    "SpT/IZL2IbvYhLSrgw/J+RED9LxTbMUeT6FFZA2/EC4jLDaheJBhNTV2Y+5/kfJqYuDymA"
    "9I47iehNNF3At7Ms5KZX0c+r1RdnM9X6NKr1cfSQ4oHkQDJC+tp5ea39Il6eoMpeydtf8P"
    "JMbujleHVfXbVNJMWbC3tyvThf0TxjYkizOvhT6oJXzF3bcGKIjome+zBlMP7Dcv/BpN3W"
    "vRkgsU8R60k3oq9hWHHQyrNWs1KopzmlUE8X8m74v2lVqvMOjg45jM+gGTnHhD6EreMTrW"
    "TnlKOGE7uEQxYrjUqua2oolgpi2vF0xGJiaY1YerDKGVKD0s+QqucEf9ao7/H/talSqw=="
)
