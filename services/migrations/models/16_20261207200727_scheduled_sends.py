# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 16_20261207200727_scheduled_sends.

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
    "eJztXW1z2zYS/isYfYl9o7i2/BKf++VsJ7lL28SZxL12pr6RIBKSWFOASlB2dLn898MCIE"
    "VKJEXIokwx+JJYwC5ILsF9w4PF19aYucTnB5ck8JxR6wJ9bVE8JuKPhZ42auHJZN4ODSHu"
    "+5IUz2n6PAywE4rWAfY5EU0u4U7gTUKPUdFKp74PjcwRhB4dzpum1PtrSrohG5JwRALR8c"
    "d/RLNHXfKF8Ojn5L478Ijvpm7Vc+Hasr0bziay7R0N30pCuFq/6zB/OqZz4sksHDEaU3s0"
    "hNYhoSTAIYHhw2AKtw93p58zeiJ1p3MSdYsJHpcM8NQPE4/b787bWt3uh5vb7uc3t91uy0"
    "BADqMgXHGrXD79EG7hZefo5NXJ+fHZybkgkbcZt7z6pi49F4xilOL5cNv6JvtxiBWFlPFc"
    "qA8k4HBLS5K9HuEgW7QJlgX5ihtflG8kzSIBRw1zCc9n1TZEPMZfuj6hwxA+jc7paYFA/3"
    "356fpfl5/2BNU+XJKJz0B9HR90V0f1gdTnUoaPykDCmryB0j06PCwhXUGVK13Zl5auuGJI"
    "1KedlvBPn28+ZEs4wbIgZddzQvQ/5Ht8SVfsgLQLhAvCgJHHnP/lJ2W69/7y90VxX/9ycy"
    "WFw3g4DOQocoArIXpQ0IP7hDaBhj527h9x4HaXeliH5dEud40748UWTPFQChKeGJ5Pm6zX"
    "/Xd0wLKMme4pNGbeeCjeandMQlzKorV+JrMfHrA/JYLACTnCfTYNkbBhCHRrH3OCvJATf4"
    "D2oJE7IzLGSOvK/YPWwuvbxHhPsKX3ZGaikDT5ZhTS89rTlDo6Oymhjc5OcpURdK2wr/CK"
    "jaxrxNBA7b8x21oTFXQ5DUdvHsCOZLnUcWexVy3IugToeDlFdDmZEOq+ZNSfIZ8NERuggD"
    "wwBwOB0CPURa7HYXjeFj3YRf0ZEhcIZqgfsHsSoJChe8+5FzbuQSgWwkGj8GUNVeWFNhwG"
    "XHnD7yUS+Hunc3z8qnN4fHZ+evLq1en5YRwSLHcVxQZX7/4J4UHqQ1sdL0yzxJ+vzaaZ0m"
    "+CLtuU6ZiL1iUPnmNkK+YcawlYz956yve4U0K+x51c+UJXWr734rmMnB5N38DJe3RWJgo7"
    "yw/CzhaFq6xXea2s6Fdr5V0Q7dYUc03cntdS7dwKE0+zHJ9kd6Hro9SXcAIEZVnnhyLsOM"
    "KTQJILDViAGBUxkxwKXBT4NeUk+BFJx0XEUOjzvy5fdk7PkMcRD1lA3AxfZ3PjWtemxl/Q"
    "7rg2ux8UP6NnUzsTUbFrM/FxKFTW2ETESZ7tCbnV2lERS7vQHWE+MhFymsvmz1aqCicgII"
    "ouzkjnF5nCNJ/1Kw2t4vwFkC8TLyDc+AWk+dZ6Aavj0aY6JXPxQ4btfo35n+arSPzfw/Sn"
    "DnPhtgyUfJJni5b0T64W4atX8+cltPx5rpI/X9TxPuZhV8RS5rN8kdPO8x1MH/zKZVS8lD"
    "eQ7e2ihAHE3+USBZUAkJ4zQGyg05cficv/DSQd0TcujDnqlFG9gio/U9tZUr960S4r18SY"
    "TzDNCckTbAuC7gu+qiQdt2wXLXN1c/MLjByjZa7eLejUD7++v3ojhC9FL4i8MMelsCHN92"
    "vrrhkFyA7Wglqyean+QtvnJChLJstvKEFJtgvU67kXX/G3i6/9b70e2ju6ONpHLBDNw4uv"
    "Q88VjQfih/SyOPlLkHhcQpLEDzHSlIYkWM6dV3eZDafS8w1IQy310UkptOVJAdry5HCVsb"
    "bLqpXGSeKbWCNG0lzbMxqHO28xliQ/5sOumRpZYGseKKNTBjfQyccNdJZwA1JkpuCBBJOd"
    "4evNcOuUPvMLsDFulTEue6QqmVRWvDFD85T25hfpxoTCLXWx75vIeIGteZLesP+XkFc3II"
    "7hFqds7iftdqqZ8Lex2SmFsvCM9klqcjvNM6a5QXom+T2M+3oBYMFh0Yxvf/5E/DiXsiB4"
    "nXF5LwfZQTflWzS/olY9Tb5Vmb/S0srIXM3lmJ+zSrywEtBOCa98wZHmGnkTucdE7izhoX"
    "hRyKMShplMNmVAOdcfJyPf9IdMvMlOEdT9xyI56+NLWyTn9j0/+IjMU1JJLhuwrxcv/sk8"
    "StaQfZrPSn/NhCAZrJOKTXBZqMrakDjmG2VKIvotZkrGsTO0E953KsichsZQgJjH4gAMcA"
    "AiHqTGop4zWVmbYC6E0264eJNgaeDS5MaWgpci97TQlyX+lgXEG9KfyUzK/Z24SUwz9/bk"
    "YCJ2TO55cbpoDvBjHCsm55uQgXhyoibz9eXn68vXb1rfngex8l6lDVuZIT9djVPRacfSQb"
    "8ynUizEVlEAoufnIv7y4ruixnu6B29miER0rUBcoK5jPTZAP0D+/4LfiFxJgF75KjXS0Fq"
    "ej0FPeHAA0TqOi84mlKIX+5o9GRor9dTsBXcZw+yTI9KLoxxcE+C/QP0W+CFIaGQZ1AjyX"
    "sTQwlpUC4EIoZpq32kAxbAyJKAo0cvHEVPxn8Uo47FBVzVnB4pII54oPyshY5po08SnNDF"
    "5MUfy702l1G7XEa2Ui02Y9aGFduwpKdgHNRtPZJuyBSva3pu51dmawJ1fa9sU7bjoLpWOA"
    "7KCJZ3HCR9W9deEObUIWgiPINUWl+Y+T1oaAO4dB9sNnWhjRMxAYI2cjxXtgYEqTlykely"
    "VHOpOwpGfeAFPERD70E4AEM8eTkIiPBYAsEjbqCtgbFiYBd5LhlPGBSuRDBobimtBcveRn"
    "+01E1Il+Cp6xjfHYx2U6g3a+Stkf9ujPxc4ZSd1HOOBk7rCiolGKa3rBdVWrRSOgayjegb"
    "KNwKKsWRLxk4tlvRmiNcTd8EHFWBLG/f/H6bSn4vIdbGM93zy82Hf0bkizC2ha2eWJW3Lo"
    "sZjOgtSnB9lGAyAWqI1cza0WBlbyB7W4Vy6+VqJn5GJfn8mR4z2Gm+/jSXQhQRv4mPkuSp"
    "yJTufoSeqAPkeutsj0qxWcjPumpl4Pmka3hGRZKncRO8ghhnNB33TWWcYrJCXinkSUAePP"
    "JoYiATLNZErm8iByyAJY0svFW+7FNMVvpP8MNHAIgw0ywRRxPi/Kq9k9A4oR1aGPIaPkm9"
    "llbfen7R8qrsbpdYYu2Cq1S+4P504jPsSoxVIG4vWg1FARmQAArmoz0vRGM8QyPmu4jDEU"
    "DYRzgMsTOCzAb/cQ7Q0qX0Wwsvuqrr3NF5N+wLA9hX5Cj2ej/0erFH0+sBcGvE5AVc9kjh"
    "ZtpyDfdxJFdWxeAKdYV8gmGxVjTeUX3XABITt0moQ1x9GpLo5kSjyWZxE1LfJEd7nARQ5J"
    "z/EK18/6DtDz+YzJ58wptFbT0naiv60szWaNJczduPtnlD+JznGNZJso1CEn30MuHHH70V"
    "0OOJVx52rPZVJK0FXrmveCUPgI+XtTrcltDoB+jmUcOVE1BepOnbc9ixahemLjZ8FwjfUW"
    "17phTGi6DFqvEFR8JgJdHFB+hSmErhpUOdPW/shfwA5guw9npL0KX2HX3UkOUprMFrOzUn"
    "EBfwmXNf0ibN4UdiqlpccT0tlIUcVQs5qo8H0EAknUV2PWNyXpnBbt/I80oxNVCHVJCgt2"
    "vZ302C57MzIu7UJ+5nQtNOUiZBoRfMI9KuxIiXdYiBGHIsfRKh3OUBzwTObpa/wJXEIdRz"
    "XnZx42vGmYsF13mDo4OTbepJ94nDxM+LDDi+xzUaHwlnFtI1d1T41r1edPVeTyWBYER9vz"
    "NgwuqZ9NY8cf8ObDnkDC4XHwipdgo8jhjkqu6o5hfeewi7BWQxol7vAsE52xLrz9UfaM/x"
    "sTeO9jbGl51gzvclVdgWb9LzIdfkwG5a388/fXIV+F/0w43IiRIu7hZIddltAs+7TcBiqi"
    "2memdFa+PNSuNNU6SSLeD8xDBIeBTCnzPCFyRYnoQuqNsL2Da8QBchN5vwCSY769ff1hX5"
    "g6U9kIhhi+W4tD/d2o423/gOmWdLHdYN51E1xjcIWIY3na+/YwaLDVtfebuMEmNcdYLJIp"
    "gsqrq2UY5FVTcbmnCrYKoZGdrbGMCan5pVINfSKVlF/oJHZ+LxtixmFrBHuYIfMBbGSU6Z"
    "h8QhQNN4qMhgw09WLnYTw2YjHfTzrQQ7/IgiuIEcn2BnpMZtK/yBqouSAUBoz3EPgjpdUA"
    "2Su9DsQc42OlEQTopCgH1FIxF4QUJ2Gt7RPU0na7HQKdR5E11HBwfqhgQNFGKBVKs+pfBv"
    "YkQ1XEh4qGWAbkWLemRp+iXEj8t756rGXBtR8hgzqEIv7fgSUvyQ7cVUfPPiD2N4RXQOVn"
    "5iFl6moR+ZYLEpWuMUrU1zVZvmkrPTvAB9gssG/2s7kFptGsp+zmRFv7bopapf4zTKxq5Q"
    "VHQU5Y4ct9rM+b0T54A2QvS1Cqc+FYZUn0qGVV2j2Cqu7pyo3BydC6XGu4C4R0Kok9HRnm"
    "JsayIRIkShDJRzzoi2qrnQHY0jKz08AMBhOxMQH8A/ImRhgY489igAUCAa42xM4DJChlBG"
    "GvABuVuN4irSUUhgj7+qzQdcFIPY+rrVnX9Vg3i6ViLevBtmI+iKI2iwleYbyFNs1tvaZW"
    "8LKnAVuFu6QFcJfysO7I2y2TrTOxDeyQQPZQI0SqOCXwSFr9HeyAME7UwliCO/ptfbv1jl"
    "b1VxmTs60K6UeF4J8sVo4ouJFCe2HeG+cUSZdN8ALiz+lNMaERoGs3wPK2Ed4lrdibYw6+"
    "AO63bV0u2yvoHd7dWUWf5spWas0KXRrc3m0ecWfwUKpSbe2GsCS+EfA8KhaEyWQ7ZAUeiT"
    "uZK2O0kSr3LK8t9CUTJIXck6JXXSHLuSC9p1FFIKx6i+AwPhzjkaqJuPOyUEfNzJFTB0pQ"
    "UsIi+PZgi48LzcOZM9L9fkbGIfhyLGHZtM5yTPFsH9rR2dznY//9Y3aFFqmEimWzV+W5rK"
    "R50yR8YLqvwscue8Ro7zBxZ6A8/BeccUp/oLnWaaoCyZx7yhBCXZZH4RFlSnHPKJON0ZQj"
    "lJOpOdHDCp0QovQF4zCiVsfHRbQLLWysr67dv32/vMNTqxJKK3O3afvmPXeN9Xms86Q7u4"
    "7Ji0x9fTgLNgldXWVKVtd9eRDCVN+G20LyRlTD032iIizCoYUhWtoz1dfSfaLhJgOoQ/By"
    "HguMIMI17B+DYft0vf3e7Y9UZhs2xCruIMRu4ehJUY7bI6ZFNCPtx5HVIT262PlnjzQGiY"
    "ZbVT/YX2OlqcJEBaviqhKqOnmecYaL0NVLcv17++UPX6pgFcHomJMyWqSt9kykdLFrui69"
    "zRPYACwabRAHGCA2ekQEHisvuwvZVPx+QAvSY+CaNagbo1t5iftfJ1+UKLrLxdv98WWNjG"
    "ld+tbfooVOxPrJ9llqKuQosEKrr7J+sbZH6BBeI3Wfp1D1Q/m4Z99mX/AgVEvB6iC8LCA7"
    "5kgwGCHf6+LtjqBmwygYqtDDYAPWDfc7MzwJVcJTOEDHEgfmqFk1A/NpiszcdWZGZSr89g"
    "ZTHJVpXua+rbsEZ+60Z+gmdwxppJ0j7BYvP2T8jbYxEFjSdZ0IWCwrJzlsZE/J2jk1cn58"
    "dnJ7FGiVuKFMmy0qDkS2jsrSaYrLpeGw5iQ4UalHjIqbm5oopJXuHNTVXHe05zeXpaxl6e"
    "nuYbTOirVVR2Kx3MVk5gpnvbK2Mz5aeWDM9+k8d3iKhJRk+Am8ESGHOBMEVvr9+L0GnowS"
    "AaOnNPKBzsgS4/fuDRWlzUih5Jf8TYPfr10y/LIVqlVypa6UsCLuUANk6rk6bblUW/JoF5"
    "dge3vDUhlwF75kM9z5dgy1LRGIg3ZmigbE+PyiyqCqpc+co+65g+u7quibf0iah1xCxfKe"
    "4r9JQCTVXOTTLc8pdOVmm7RMbsT8+6HvWZy0WuR52TlLtfB7iuLl6jcF1K3xgIN2ZooHjt"
    "vrSdVNE1cTeuoIh+lq+hOgodjT6QVOJlaGUoL0Ds4nONpm2RZ2EtXnVblPSXYCDeBEvz3D"
    "V7uPpOao+aGL2PAYNTrLLMXtRVaPgmiqgC01fW0D2nqq3R6S2bUgP5Nk3+byDpiL5x5S82"
    "r3HxgxC60crvnKNx4q0kjwwnrU4z7Frx2azTLMu2+xKupHTydOKulalP81kvYhe9iGtGQ2"
    "H4PxEhfp6JbVigKPQpHEXbDRRxlWH1hIgGG1PXZj4X+R82pq4OKQCfgYFsI3obTZfw7RyH"
    "TMKshEVhrb4km63WZ1CtLyRfMjyQAkiGpm+cl9c5LOPlCar8lbzDJS/P5oa+H6/u14ncJp"
    "LhzemeQi9uKmmeMTFkeND4U44Yr5m7tuXEEHukZu5DzGD9h9X+g027bXozQGqfomcm3Yi+"
    "gWHFUafIWs1Lob4qKIX6ainv5v03q0p10akkmsP6DIaRc0LoI9w5PTNKdsYcDZzYm9fJ9U"
    "YlNzU1lEgFceN4OmKxsbRBLD1klBhP8gTTWjN89Y7EZk7wZ436vv0f95c6Ew=="
)
