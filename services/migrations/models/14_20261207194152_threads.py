# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 14_20261207194152_threads.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Threads (issue 28): two nullable ``messages`` columns (``thread``, a reply's root id, and
``tseq``, its place in the thread; unindexed, so a message without a thread costs no index
entry), and three tables owned by the message service: ``threads`` (a thread's counters, one row
per root with replies, listed by conversation and newest reply), ``thread_replies`` (a thread's
replies in order, for paging a thread; rows only for replies) and ``thread_reads`` (a member's
read marker in a thread, one row per member and thread at most). New tables and nullable
columns: no existing row is rewritten, on PostgreSQL nor on SQLite.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "threads" (
        "root_id" VARCHAR(26) NOT NULL PRIMARY KEY,
        "conv" VARCHAR(140) NOT NULL,
        "root_seq" BIGINT NOT NULL,
        "replies" BIGINT NOT NULL,
        "last_id" VARCHAR(26) NOT NULL,
        "last_seq" BIGINT NOT NULL,
        "last_ts" BIGINT NOT NULL
        ) /* A thread's counters, one row per root message with at least one reply. */;
        CREATE INDEX IF NOT EXISTS "idx_threads_conv_e27236" ON "threads" ("conv", "last_ts");
        CREATE TABLE IF NOT EXISTS "thread_reads" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        "root_id" VARCHAR(26) NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "read_tseq" BIGINT NOT NULL,
        CONSTRAINT "uid_thread_read_uid_0a4ecd" UNIQUE ("uid", "root_id")
        ) /* A member's read marker in one thread: at most one row per (member, thread), written only */;
        CREATE TABLE IF NOT EXISTS "thread_replies" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "root_id" VARCHAR(26) NOT NULL,
        "seq" BIGINT NOT NULL,
        "tseq" BIGINT NOT NULL,
        "message_id" VARCHAR(26) NOT NULL,
        CONSTRAINT "uid_thread_repl_root_id_d25675" UNIQUE ("root_id", "seq"),
        CONSTRAINT "uid_thread_repl_root_id_be54c8" UNIQUE ("root_id", "tseq")
        ) /* A thread's reply, for paging a thread in order (history with ``thread``): written only */;
        ALTER TABLE "messages" ADD "thread" VARCHAR(26);
        ALTER TABLE "messages" ADD "tseq" BIGINT;
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "threads" (
        "root_id" VARCHAR(26) NOT NULL PRIMARY KEY,
        "conv" VARCHAR(140) NOT NULL,
        "root_seq" BIGINT NOT NULL,
        "replies" BIGINT NOT NULL,
        "last_id" VARCHAR(26) NOT NULL,
        "last_seq" BIGINT NOT NULL,
        "last_ts" BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_threads_conv_e27236" ON "threads" ("conv", "last_ts");
        COMMENT ON TABLE "threads" IS 'A thread''s counters, one row per root message with at least one reply.';
        CREATE TABLE IF NOT EXISTS "thread_reads" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "uid" VARCHAR(64) NOT NULL,
        "root_id" VARCHAR(26) NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "read_tseq" BIGINT NOT NULL,
        CONSTRAINT "uid_thread_read_uid_0a4ecd" UNIQUE ("uid", "root_id")
        );
        COMMENT ON TABLE "thread_reads" IS 'A member''s read marker in one thread: at most one row per (member, thread), written only';
        CREATE TABLE IF NOT EXISTS "thread_replies" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "root_id" VARCHAR(26) NOT NULL,
        "seq" BIGINT NOT NULL,
        "tseq" BIGINT NOT NULL,
        "message_id" VARCHAR(26) NOT NULL,
        CONSTRAINT "uid_thread_repl_root_id_d25675" UNIQUE ("root_id", "seq"),
        CONSTRAINT "uid_thread_repl_root_id_be54c8" UNIQUE ("root_id", "tseq")
        );
        COMMENT ON TABLE "thread_replies" IS 'A thread''s reply, for paging a thread in order (history with ``thread``): written only';
        ALTER TABLE "messages" ADD "thread" VARCHAR(26);
        ALTER TABLE "messages" ADD "tseq" BIGINT;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "messages" DROP COLUMN "tseq";
        ALTER TABLE "messages" DROP COLUMN "thread";
        DROP TABLE IF EXISTS "thread_reads";
        DROP TABLE IF EXISTS "thread_replies";
        DROP TABLE IF EXISTS "threads";
    """,
    "postgres": r"""
        ALTER TABLE "messages" DROP COLUMN "thread";
        ALTER TABLE "messages" DROP COLUMN "tseq";
        DROP TABLE IF EXISTS "thread_reads";
        DROP TABLE IF EXISTS "threads";
        DROP TABLE IF EXISTS "thread_replies";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1z2zYS/isYf4l9o7i2/Hrul7OdpJc2sTOOc+1M3JEgEZJYUwBLQHZ0Of/3wwKkRE"
    "okRSiiTNH40sbALkg+AnefXSzA71tD5hCP756TwO0Ots7Q9y2Kh0T+Y6angbaw70/boUHg"
    "jqdE8VSmw0WAu0K29rDHiWxyCO8Gri9cRmUrHXkeNLKuFHRpf9o0ou7fI9ISrE/EgASy4+"
    "ufstmlDvlGePSnf9/qucRzErfqOnBt1d4SY1+1vafinRKEq3VaXeaNhnQq7I/FgNGJtEsF"
    "tPYJJQEWBIYXwQhuH+4ufM7oifSdTkX0LcZ0HNLDI0/EHrfTmrZttVpX17etz29vW60tA4"
    "C6jAK48la5evo+3MLr5v7hyeHpwfHhqRRRtzlpOXnSl54CoxUVPFe3W0+qHwusJRTGU1Af"
    "SMDhluaQvRzgIB3amMoMvvLGZ/GN0MwDOGqYIjydVeuAeIi/tTxC+wJejebRUQ6g/zm/uf"
    "z3+c22lNqBSzL5Gui34yrsauo+QH2KMrxUBgiH4jVEd39vrwC6UioTXdWXRFdeURD9aicR"
    "/vXz9VU6wjGVGZQdtyvQ/5Dn8jlbsQFo54ALYMDIQ87/9uKYbn88/2MW7ssP1xcKHMZFP1"
    "CjqAEuJPRgoHv3MWsCDR3cvX/EgdOa62FNliU73zVsDmdbMMV9BSQ8MTxf6LLedN7THktz"
    "ZmFPrjNzh335q7aGROBCHm3rNzL+6QF7IyIFuoIj3GEjgaQPQ2BbO5gT5ApOvB7ahkbeHZ"
    "AhRqGt3Nndmvn5VjHeD/jSezI2MUih+GoM0vP604Q5Oj4sYI2ODzONEXQt8K/wExt510ih"
    "htZ/Zb61IibofCQGbx/Aj6RR6klnPquWYi0CcryYITr3fUKd14x6Y+SxPmI9FJAH1sUgIO"
    "0IdZDjchieN2QPdlBnjOQFgjHqBOyeBEgwdO9276WPe5CGhXCwKHzeQpV5oRWHARdu/6VE"
    "Av9sNg8OTpp7B8enR4cnJ0ene5OQYL4rLza4eP8LhAeJF21xvDBKgz/bmo1S0a+DLVuV65"
    "hC65AHt2vkK6YaSwEczt5q4nvQLIDvQTMTX+hK4nsvn8uI9ITyNZy8+8dForDj7CDseBZc"
    "7b2KW2Utv9gqbwK0azPMFaE9b5TZuZUunqYRn3h3LvXR5kuSAClZlPxQhLtdySSQ0kI9Fi"
    "BGZcykhgKKAn+NOAl+Roq4yBgKff73+evm0TFyOeKCBcRJ4TqrG9dSmwq/QZtDbTY/KH5G"
    "ZlM5F1EytfE9LKTJGppAHNdZH8hbWxsKsfILrQHmAxOQk1o2f7bQVHQDAlC0cEo6P88VJv"
    "UsrzT0itMfgHzz3YBw4x8gqbfUD7A4Hq0rKZnCDxm2+yXmf1KvJPhfwvSnXebAbRkY+bjO"
    "Gj3pX1wvwpdv5k8LWPnTTCN/OmvjPcxFS8ZS5rN8VtPO8w1MH3zhKiqeyxuo9kZewgDi72"
    "KJglIKkJ4zQKwh6cuOxNX/DZCO5GsXxuw3i5heKZWdqW3Omd9w0S4t18SYRzDNCMljajNA"
    "d6ReWUhPWtZbLXNxff0BRp5Uy1y8n7GpV18+XryV4CvopZArMiiFDWlerq+7ZBRKdnAI1J"
    "zPS/Tn+r5uTLJgsvyaEhRXO0PttnP2HT+dfe88tdtoe/9sfwexQDb3z773XUc27so/FMvi"
    "5G8p4nJVkiT/kCONqCDBfO68vMusOJWe7UBq6qn3DwtVWx7mVFse7i1y1nZZtdQ4Sb4TS8"
    "RIodb6nMbexnuMOeSHvN8yMyMzavUrymgWqRtoZtcNNOfqBhRkpsUDMSU7w5eb4ZaUPvMP"
    "YGPcMmNc9kh1MqkovBOF+hnt1S/SDQmFW2phzzPBeEatfkivmP/F8GoFpGu4xSld+4d2O1"
    "UM/HVsdkpUWbhG+yRDcTvNU6a5QXom/j4MO+ECwAxhCRXf/XZDvEkuZQb4MOPyUQ2ygTTl"
    "KZpfUWs4TZ7KzF+FaKVkrqY4ZuesYj9YgdJOVV75iqNQa+D6ao+J2lnChfyhkEtVGWY82Z"
    "RSyrn8OCn5pq8q8aY6ZVD3p63krA6XtpWc62d+8BKZp6TiWjZgXy5e/Iu5lCyBfVLPor9k"
    "QpD0lknFxrRsqcrSJXHMM8qURPJrzJQMJ2RoI9h3IsgcCeNSgImOrQMwqAOQ8SA1hnqqZL"
    "E2qbmQpN1w8SamUsOlyZUtBc9F7knQ5xF/xwLi9ulvZKxwfy9vEtPUvT0ZNREbhntWnC6b"
    "A/w4iRXj801iIJ+c6Ml8ef758vzN262n56lY+ajThlupIT9dXKcSph0LB/3adaJQjahDJL"
    "D8k3N5f2nRfb7CHb2jF2MkQ7oGlJxgriJ91kP/wp73ip+pOpOAPXLUbidKatptXXrCQQeE"
    "9HVecTSiEL/c0ejJ0Ha7rctWcIc9qGN6dHJhiIN7Euzsot8DVwhCIc+gR1L3JoeSaFAuAZ"
    "HDNPQ+0h4LYGQlwNGjKwbRk/Gf5ahDeQFHNydHCkhXPlB21iKMaaNXEkjobPLi63yvzWVU"
    "LpeRblTz3Zj1Yfk+LM4UjIO6tUfSNZniVU3PbfzKbEVKXT9q35ROHHTXAuKgnWBx4qDkG+"
    "HZC9KddgnyJTNIpPWlm9+GhgYUl+6Az6YOtHEiJ0DQQF3XUa0BQXqOnKVSjnIudUfBqffc"
    "gAvUdx8kAehj/3UvIJKxBFJH3kAjLIyVAzvIdcjQZ3BwJYJBM4/SmvHsDfR1S9+EogQ/uo"
    "7x4spoV1X1Zp28dfIvxslPDU7RST3VqOG0LuGkBMP0lmVRhaFV6BhgG8nXENwSTooj31Lq"
    "2G5lawa4oXwd6qhysLx9+8dtIvk9V7E2HIc9H66vfonEZ8vYZrZ6Yn28ddGawUjeVgkuXy"
    "UYT4Aa1mqm7Wiw2Btgb0+hXPtxNb6XcpJ89kyfKNhpvvw0VyDKiN+Eo8R1SnKlmx+hx84B"
    "ctxltkcl1GzJz7Jmped6pGX4jYq4Tu0meAkxzmA07JhinFCyIC8E2Q/Ig0seTRxkTMW6yB"
    "9gggNYkjeb25FGHSLNsv2jME6pClsIu4RXrMji3ic3tSLok7ugGsh3i1cC6VLHaLENanbw"
    "wq0+C3WgHoiTAE6T5j9FS4w/wW3t+uNddP0YVhDFqmtQKN+YVgLpdleggPTk0EiwM4TvqC"
    "7CQSMK40XVPrrxFUfskcYLfnbRuUBDabbg6Bt36Aq+C+8oqLbbc6uJjTv6GFYRjSAtroaO"
    "C8gLeKx7X/CcnOmKoJzAttTHlvpUL39R/ipg+B4b1gUntezi9kJqYBdb1x4vazfY6hgFcw"
    "mlGtqQEmJmm15+MYz3VoeDKaT3dhIoZvNeHUwWpr5aXFK68PRD3lBl6wF7VMQwYExMWKgq"
    "BscCeQRLLqnEILWbxo5XMWw6gQ6fbyGH/hlFLFaNT3B3oMdtaFqrK+BSeG1jSqeldLJ0Hg"
    "6YhGaX8OnZkXAmGIIYEw2wHNlBbCTu6HYop6ru6Agq+mXX/u6uviH45G4f+3ynEZ1H+Q85"
    "oh5OEC5CDNCtbNGPrNIvqtyfq3vnejdBA1HyOFHQJX2NySUU/PJXQZhKWyD/YczaoxPPsq"
    "k7/JiGzCamYmlNBq2xbP252LqaneZHDcS0rOP9oXVdlxjSnZiShX5p6JWpX+Lc0drW95V0"
    "6OiGHKxbz/m9ESe+1gL6SoVTN7kh1U3BsKplFFtN9vHG9uhGJ4Dp8c4g7lGZ+Xh0tK0VG6"
    "GQDBGiUAY27qZEW+Vc6I5OIqtweFhXaLe18C78R4YsLAgjj21KZCgF0RhnQwKXkRjChmGo"
    "rt9ZuF84CgnsQWeVeYHzYhC7k7K8k84qEE9XCuLV0zAbQZccQYOvNC/USKhZtrXJbAtqrX"
    "PoVliKXYBvTQJ7o2x2mOntSXbi475KgEZpVOBFsMUZbQ9c2FU91gniiNe02ztni/hWGZe5"
    "o72QSsnnbUgOJYfyPTmRJontrqRvHFGm6Bvs8Jb/VNMaESqCcTbDinmHya7sWJtIO6LF0q"
    "5K0i7LDWwRQV1m+bOVdFrQldOtTE3Sc8NfgkGpCBt7Q2Ap/FNAOIGDD1MI2YxELidzlGzL"
    "jwuv9HPIk2SQvpIlJVWyHJuSC6rTLp7wPTAAd6pRQ9t80CwA8EEzE2DomvlaF/VcmgJw7s"
    "nIUyV7MrLJKdQeFjLGHZpM57hO7b4/t/rpbMtE1/0xS0aNvswVya/N+W3apxQrQpyvmHB7"
    "bjfz6+mJ/lzSTGOSBl9Pj6up/CIsqMLnpdA2TnYKhuRjjFUnh5rUaIUXSl530j+avtLRV/"
    "ytdMvbLW/fdN7eYY7R2TSR/A/tu6+aR173xnv7YemXu+wY98eXo4Cz1C9HpkgV9t2trlIo"
    "6MJvo30hCWfqOtEWEelWwZHqaB1tyyu7DySItosEmMI3GXBPQB2XSHHiJYxv83Gb9N5tjl"
    "+vVW2WTciVnMHI3IOwsEa7qA1ZFcib/5nJivju8BsNbx+I+mJV1jccdH+uv44WJwmIFi4a"
    "Cj+tMPnUwmPWN5RmjlXRX3RyRgFcHsmJM4JqayyQP+KDOY9d0nXu6DaUAsGm0QBxgoPuQB"
    "cFycvuwPZWPhqSXfRGfeQr/H5E2OrY6L3qb2iel7fr9+sqFrZx5Yv1TZ+kif2VddLcUtSV"
    "65HARLf+Yh2DzC+oQPwG22bQNph+NhId9m3nDAVE/jzRV/ngAV+zXg/BDn8PxEUDOQHzfa"
    "K/QOjSB+y5TnoGuJSrpIaQAgfyz9DgxMyPDSYr87LluZnEz2ewshhXK8v21fXXsE5+7U7e"
    "x2OPpR3bmnNe7lTF5u1/IG+PZRQ09NNKFzKtS1ylNhF/c//w5PD04PhwYlEmLXmGZN5oUP"
    "JNGLPVmJI110uXg9hQoQJHPJAgYEbff0tq1fAQ7qOjIv7y6CjbYUJfpaKyW0UwtzICs7C3"
    "sTA20zy1YHj2uwxqCERNKnqCuhmsCmPOEKbo3eVHGTr1XRgkLJ25J7QBXeefrni0Fhe1ok"
    "fSGTB2j77cfJgP0Uq9Ut5KX7zgUg1g47QqWbpNWfSrUzHP5tQtrw3kIsWe2aWep3Nly8rQ"
    "GMA7Uaghtkf7RRZVpVQmvqrPEtNnN9cVYUs3RK8jpnGlSV8uUwpCqWI0yXDLXzJZFfolMm"
    "R/uZZ6VGcu51GPKicpN/8c4KpSvFrVdWl7YwDuRKGG8Np9aRtpoitCNy7gEP00rqE7colG"
    "B0RKYRmhMVQXIHbxuULTNo9ZWI9X3hal8E0wgDemUj+6Zr/Zs5HWoyJO71PA4CvQaW4v6s"
    "p1fL4WKsH1FXV0z2lqK/T1llWZgWyfpv5vgHQkX7vjL1ZvcfGDBN1o5XeqUTt4S8kjc4HF"
    "KMWvZSM81agdwqUcnTzynaUy9Uk9yyI2kUVcMiqk478hEn6eWtswI5HLKbpathVo4TLDap"
    "/IBhtTV2Y+5/EPG1OXVykAr4EBtpG8jaYLcLtul/giLWGRe1ZfXM2e1mdwWp8g31IYSE5J"
    "RihfO5bX3CvC8qRU9kre3hzLs7mhl8Pqvvhqm0gKmwt7clncSMk8Y2Lonhh92z0Ut4kh48"
    "QQe6Rm9GGiYPnDYv5g026r3gyQ2KfomqEbydcwrNhv5nmr6VGoJzlHoZ7M5d3c/6adUp33"
    "VZJQw3IGw8g5BvoAN4+OjZKdE40aTuzV2+RqVyXXNTUUSwVx43g6UrGxtEEs3WeUGE/ymN"
    "JSM3zxjsR6TvBnjfqe/g/ViZnN"
)
