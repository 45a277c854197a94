# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 14_20261207194255_forwards.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Forwarding (issue 28): a nullable JSON column on messages, ``forwarded`` (a forwarded copy's
origin: the original sender, the kind of conversation and the original time), and the
``message_files`` table: the uploads a merged message refers to (it may hold several
attachments, where a message of one has ``file_key``/``thumb_key``), read by key as the columns
are (who may download, whether a recall leaves an upload unreferenced) and by message (a recall
of the merged message releases its own). A new table and a nullable column: no existing row is
rewritten, on PostgreSQL nor on SQLite.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "message_files" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "message_id" VARCHAR(26) NOT NULL,
        "key" VARCHAR(64) NOT NULL
        ) /* An upload a merged message refers to (it may hold several attachments; a message of one */;
        CREATE INDEX IF NOT EXISTS "idx_message_fil_message_ae3c29" ON "message_files" ("message_id");
        CREATE INDEX IF NOT EXISTS "idx_message_fil_key_01f3aa" ON "message_files" ("key");
        ALTER TABLE "messages" ADD "forwarded" JSON;
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "message_files" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "message_id" VARCHAR(26) NOT NULL,
        "key" VARCHAR(64) NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_message_fil_message_ae3c29" ON "message_files" ("message_id");
        CREATE INDEX IF NOT EXISTS "idx_message_fil_key_01f3aa" ON "message_files" ("key");
        COMMENT ON TABLE "message_files" IS 'An upload a merged message refers to (it may hold several attachments; a message of one';
        ALTER TABLE "messages" ADD "forwarded" JSONB;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "messages" DROP COLUMN "forwarded";
        DROP TABLE IF EXISTS "message_files";
    """,
    "postgres": r"""
        ALTER TABLE "messages" DROP COLUMN "forwarded";
        DROP TABLE IF EXISTS "message_files";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1zm7gW/isaf2ky46aJm7eb/XKTtN3tbpt02vTuzjQ7tgyyrQZLrARxfXvz368kwI"
    "ANGDnGwUSf2kjnCPFYnDcdHf1sjamNHL53jhi2Rq0z8LNF4BiJ/8z1tEELum7cLhs82HcU"
    "KYxp+txj0PJE6wA6HIkmG3GLYdfDlIhW4juObKSWIMRkGDf5BP/jo65Hh8gbISY6vv0tmj"
    "Gx0Q/Eoz/du+4AI8dOTRXb8tmqvetNXdX2nnjvFKF8Wr9rUccfk5jYnXojSmbUmHiydYgI"
    "YtBDcniP+XL6cnbhe0ZvFMw0JgmmmOCx0QD6jpd43X43bmt1u1fXN90vb2+63ZYGQBYlEl"
    "wxVa7efiin8LJzcHhyePr6+PBUkKhpzlpOHoJHx8AEjAqeq5vWg+qHHgwoFMYxqPeIcTml"
    "BWQvR5BlQ5tgmcNXTHwe3wjNIoCjhhjheFVtAuIx/NF1EBl68tPoHB0VAPqf88+Xv51/3h"
    "FUu/KRVHwGwddxFXZ1gj6Jeoyy/Kg0EA7JG4juwf5+CXQFVS66qi+Nrniih4JPO43w71+u"
    "r7IRTrDMoWxjywP/Aw7mC7JiC9AuAFeCIUcec/6Pk8R05+P5X/NwX364vlDgUO4NmRpFDX"
    "AhoJcCenCXkCayoQ+tuwlkdnehh3ZoHu1i17gznm+BBA4VkPKN5fuFKutN/z0Z0CxlFvYU"
    "KjM8HopftTtGHiyl0Vp/oOmre+j4SBBYHgewT30PCB0GpGztQ44A9jhyBmBHNnJrhMYQhL"
    "Jyd6819/OtY7xH6NI7NNURSCH5egTS0+rTlDg6PiwhjY4Pc4WR7FqiX+VPrKVdI4YGSv+1"
    "6daaiKBz3xu9vZd6JMuknnUWW9WCrIskHS8niM5dFxH7JSXOFDh0COgAMHRPLSgJhBwhNr"
    "Axl8PztuiBNuhPgXgAm4I+o3eIAY+CO2zdCR13LwQL4lKi8EUJVeWD1uwGXODhc/EE/tXp"
    "vH590tl/fXx6dHhycnS6P3MJFruKfIOL979K9yD1oS33F/ws+POlmZ+JfhNk2bpURwytje"
    "6xpaUrYo6VAA5Xbz3xfd0pge/rTi6+siuN7514Ly2jJ6Rv4OI9OC7jhR3nO2HH8+AG2qu8"
    "VA7ol0vlbYB2Y4K5JmbPGyV2boSKJ1mGT7K70PQJxJcwAgRlWeOHAGhZwpIAigsMKAOUCJ"
    "9JDSVNFPmXzxH7BSjDRfhQ4Mtv5y87R8cAc8A9ypCdYeusb1xj2tT4C9oe02b7neIntGxq"
    "pyIqNm1cB3pCZI11IE7ybA7kVmtLIVZ6oTuCfKQDcprLxM+WigqLIQlFF2aE84tUYZrP2J"
    "WaWjH+AdAPFzPEtX+ANN9KP8Byf7SpRkkMv4yw3a2w/tN8FcH/HJY/sagtp6Uh5JM8G9Sk"
    "33mwCV+9mD8tIeVPc4X86byMdyD3usKX0l/l85xmnW9h+OArV17xQtxAtbeLAgbS/y4XKK"
    "gkAekpHcQGGn35nrj6VwPpiL5xbsxBp4zoFVT5kdrOgvgNN+2yYk2UOgiSHJc8wTYHdF/w"
    "VYX0rGWz2TIX19cf5MizbJmL93My9errx4u3AnwFvSDCXo5JYVya56vrLimRKTswBGpB56"
    "X6C3WflaAsGSy/Jggk2c5Ar2ef/YQPZz/7D70e2Dk4O9gFlInm4dnPIbZF4574Q1lZHP0j"
    "SDBXKUniDzGSTzzEFmPn1T1mzaH0fAXSUE19cFgq2/KwINvycH+ZsjbbqpX6SeKbWMFHCr"
    "k2pzT2t15jLCA/5sOunhiZY2teUkanTN5AJz9voLOQN6Ag000eSDCZFb7aCjdG6RP/AMbH"
    "rdLHpRMSBJPKwjtjaJ7QXv8m3RgROaUudBwdjOfYmof0mu2/BF5dhizNI07Z3I867VQz8D"
    "dx2CmVZYG1zkmG5GaZZyxzjfBM8nsY98MNgDmDJWR898dn5MxiKXPAhxGXj2qQLTRTHqL1"
    "FbWGy+ShyvhViFZG5CrGMT9mlfjBSqR2qvTKFxyEXCPsqjMm6mQJ98QPBTBRaZjJYFNGKu"
    "fq42TEm76pwJvqFE7d3yaTsz62tMnk3LzlJz8i/ZBUkss47Kv5i98pJmgF7NN8Bv0VA4Jo"
    "sEooNsFlUlVWTomjjlakJKLfYKRkPDOGtsL6TjmZvqedCjDjMXkAGnkAwh8k2lDHTAZrnZ"
    "wLYbRrbt4kWBq4Nbm2reAFzz0N+iLi7yhDeEj+QFOF+3sxSUgyz/bk5ERsGe55frpoZnAy"
    "8xWT601gIN4cBYv58vzL5fmbt62Hp8lY+RiEDVuZLj9ZnqcShh1LO/2B6gQhG1JFJKD4k3"
    "MxvyzvvpjhltySiykQLl1bppxArjx9OgD/ho7zgp+pPBNGJxz0eqmUml4vSD3hkkcSBc95"
    "wYFPpP9yS6I3Azu9XpC2Avv0XpXpCYILY8juENvdA38y7HmIyDhDMJKamxhKoEG4AEQM0w"
    "7OkQ4okyMrAg4m2BtFb8Z/EaOOxQPsoDk9EkOWeKH8qEXo00afpDRC54MX3xZ7TSyjdrGM"
    "bKFarMaMDivWYUlLQdup27gn3ZAlXtfw3NbvzNYk1fVjoJuyDYega4nhECjB8oaDom+HtR"
    "eEOrUQcIVlkArrCzW/IxvaMrl0V+psYss2jsQCYG1gYVu1MgSCNXKWaXJU86hbIpX6ADPu"
    "gSG+FwbAELovBwwJi4UJHjGBdpgYKwa2AbbR2KWycCWQg+aW0prT7G3wrRVMQpkEj93HeH"
    "ZptOvKejNK3ij5Z6PkY4FTdlHHHA1c1hVUStAMbxkrqjS0Ch0NbCP6BoJbQaU49CMjj+1G"
    "tOaAG9I3IY+qAMubt3/dpILfCxlr42nY8+H66teIfD6Nbe6oJwzKW5fNGYzoTZbg6lmCyQ"
    "CoZq5m1okGg70G9qYK5cbL1bhORiX5/JU+YzDLfPVlrkAUHr+OjZLkqUiVbr+HnqgDZONV"
    "jkel2EzKz6piZYAd1NW8oyLJ07gFXoGPM/LHfV2MU0wG5KUguwzdYzTRUZAJFqMiV1eRA8"
    "rklkZWvlU+9ikmg/5WXgsV7jW9w07RVpTqbpfYjupKtVK+OLnvOhTaKh+FielFO0eAoQFi"
    "srg42MEeGMMpGFHHBlxelwIdAD0PWiPpBfJf4mSWsOz44oZUNc+5JXG3PEMjU2Qipdrrve"
    "r1ZtK/15NJLiOqHmDTCZGTaav9rslI7UKJwYMMFeAgKDe2ROMtCWctE2rENBGxkB3eHCO6"
    "OQozb6azJhB8mhzscMRkQWj+KtolfBV+q3zPnT76NiyT4fKUGS7Rl6YXz05zNe/szvpdmq"
    "e8861OyDYq6+ITzkzV/ISXpGm6uHyKZpCDntQWcOkZzKU8MlFzUarLaQmJvgeuJ2FqZyLt"
    "EYT07ThFM2gXqm6m+M4AvCWh7vGJHC9KwwwaX3AgFFYyE3MPnAtVKSwaWZMMj7HH9+R6ka"
    "y93kKaR/uWTML0Tl/uV4Z6KiYQD3CodVdSJ8WpGmKpmhzMemook55RbXpGfSyABmYdmSyY"
    "JwxkBmqw29eyvFJMDZQhFQQzzb7fsympG1wv94khLgMIWcbvHEWhHRzeQecmiddaXH52FC"
    "e80sqUEKnNgi4y+ep1RmHbnWVzGdwGbyqjxMEkA+DCc+YxkzlnrnOm31y8V/nFe8a223Bp"
    "YEq06hxG9BtTfttWmLYmhvMV9fAAW7l3UaT6C41mkqDUuIsiyTa7YVkW6wM7MN3pya1FMl"
    "WdXN4OISkZnQAErdFu9hUUax3dbCbWWlgZu33zdnuf2lqZvhH9o/Jo6qaRN53GZMr0P99A"
    "V1IfX/qM08w6vBlUpXV311IMJVX4zQgBefNGWpliG4ygWBG2VKtSkQbeOtgRT8b3iGHE1Z"
    "F3BomscAMHntDI2MtQ4hWMb+Jx2/TdbY9eb9TmiQnIVRzBUNcV6YqPBJMp2rt1ujtMM357"
    "j1T9v7w05KC/UF9HWQ5IkpZO2QoL1cwK10zyKtLN5UIF9fFsn8nHA7FwfCRaoAdcn48WNH"
    "ZFz7klOzKV2IFSlXMEmTUCatWKx+7KXCvuj9EeeKNKJobVeMJW23jvdf9Ci7R8fRKBaqWS"
    "1p8KZPzK56ubPgkR+zvtZ6mlqKtQI0kR3f1O+xqRX8ki/TdZ4gfsSNFPfa9Pf+yeAYbEzx"
    "PVOJUv+JIOBsAnHnYkudcGNqOui4J6rpjcQwfb2RHgSp6S6UJ6kIk/Q4GTED/GmazNx1ak"
    "ZlI/n8bOYpKtKtnX1F/DKPmNK3kXTuV5O52gfYLFxO0fEbeHwgsau1mpC7nSJcnSGI+/c3"
    "B4cnj6+vhwJlFmLUWCJOO6XPTD07ZWE0xGXK+cDmJchSe+e0pGAhFjVKuaZpqrCcXz5tTl"
    "0VEZfXl0lK8wZV+tvLIbZWC2chyzsLe91DcL7NSS7tmfwqlB0mtS3pPMm4EqMeYMQALeXX"
    "4UrtMQy0HC1Jk7RORJf3D+6YpHe3FRK5ig/ojSO/D184dFF63SJxXt9CUTLtUAxk+rk6Tb"
    "lk2/JiXzbE/e8sZAXvO9eoGg0YB3xtBAbI8OymyqCqpcfFWfMUyfXFzXxFr6jIJ9xCxbad"
    "ZXaCmxkKqcmaR55C8drAr1EhrT79iYHvVZy0WmR52DlE2qSVAvE69ReV2BvNEAd8bQQHjN"
    "ubStFNE1MTcuZEWnLFsj6Cg0NPqSpBIrIxSG6gHIbD7XaNkWWRZG41V3RCn8EjTgTbA0z1"
    "wzhXa2UnrUROl9YnSQU0U56ipUfG5AVIHqK6vonlLU1qiS3LrEQL5OU/9qIB3RN678xfol"
    "LrwXoGvt/MYcjYO3kjgy96DnZ+i1gpsqZxyNQ7iS+p6+a68UqU/zGStiG62IS0o8ofg/Iw"
    "E/z8xtmKMotCmsgLbLAuIq3WoXiQbjU9dmPRfZH8anri5TAOnd4hzRG2+6hG1nWcj1sgIW"
    "hbX6kmymWp9Gtb7sq4cLUjIec/Vwna28zn4ZK09Q5e/k7S9YeSY29Hysuq/qJqcsay7sKb"
    "TignugnjAw9JRX4TyrwBCdED3zYcZg7Ifl9oMJu637MEDqnCLWQzeib6BbcdAp0lZxKdST"
    "glKoJwtxN/zfrCrVRfeRhBzGZtD0nBOgj2Dn6Fgr2DnjaODCXr9MrndWclNDQ4lQENf2py"
    "MW40tr+NJDSpD2Ik8wrbTCa3Z7+PPw+h7+D2KdKYM="
)
