# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 10_20261207162159_token_last_used.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

A device token's last use (issue 27, `imgate token list`): a nullable column, so adding it is a
change to the catalogue only (no table rewrite on PostgreSQL, none on SQLite).
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "device_tokens" ADD "last_used_at" BIGINT;
    """,
    "postgres": r"""
        ALTER TABLE "device_tokens" ADD "last_used_at" BIGINT;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "device_tokens" DROP COLUMN "last_used_at";
    """,
    "postgres": r"""
        ALTER TABLE "device_tokens" DROP COLUMN "last_used_at";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXetT27gW/1c0+bIwk3YhhMflfgLa7nbbQofSvTvT3QmKrSRqHMm1ZB63l//9SvI7sY"
    "0V4uAYfYJI58j2z/J56ejoZ2dGbeSw1yfIw9akcwx+dgicIfHPXE8XdKDrJu2ygcOho0hh"
    "QjNk3IMWF60j6DAkmmzELA+7HFMiWonvOLKRWoIQk3HS5BP8w0cDTseIT5AnOr79I5oxsd"
    "EdYtFPdzoYYeTYmVvFtry2ah/we1e1vSf8nSKUVxsOLOr4M5IQu/d8QklMjQmXrWNEkAc5"
    "ksNzz5e3L+8ufM7oiYI7TUiCW0zx2GgEfYenHnc4SNo6g8H5xdXgy9urwaCjAZBFiQRX3C"
    "pTTz+Wt/Cqt9s/7B/tHfSPBIm6zbjl8CG4dAJMwKjgOb/qPKh+yGFAoTBOQL1BHpO3tIDs"
    "2QR6+dCmWObwFTc+j2+EZhnAUUOCcDKr1gHxDN4NHETGXH4avf39EkD/PLk8+/3kcktQbc"
    "tLUvEZBF/HedjVC/ok6gnK8qPSQDgkbyG6uzs7FdAVVIXoqr4suuKKHAWfdhbhP75cnOcj"
    "nGKZQ9nGFgf/Aw5mC7JiA9AuAVeCIUeeMfbDSWO69enkr3m4zz5enCpwKONjT42iBjgV0E"
    "sBPZqmpIlsGEJregs9e7DQQ3u0iHaxa9abzbdAAscKSPnE8vlClfVm+J6MaJ4yC3tKlRme"
    "jcVbHcwQh5U0WucDuv/1Bjo+EgQWZwAOqc+B0GFAytYhZAhgzpAzAluykVkTNIMglJXbrz"
    "tzr28V4z1Bl07RvY5ACslXI5CeV59mxNFBv4I0OugXCiPZ9Yh+la9YS7tGDC2U/ivTrQ0R"
    "QSc+n7y9kXokz6SOO8utakE2QJKOVRNEJ66LiP2KEuceOHQM6Ah46IZaUBIIOUJsYGMmh2"
    "dd0QNtMLwH4gLePRh6dIo8wCmYYmsqdNyNECyISYnCFiVUnRdasRtwiscvxRP4V6+3t3fY"
    "29k7ONrvHx7uH+3ELsFiV5lvcPr+N+keZD60x/0FPw/+Ymnm56LfBlm2KtWRQGujG2xp6Y"
    "qEYymAw9nbTHz3ehXw3esV4iu7svhOxXNpGT0hfQsn7+5BFS/soNgJO5gHN9Be1aVyQP+4"
    "VN4EaNcmmBti9rxRYudKqHiSZ/iku0tNn0B8CSNAUFY1fgiAliUsCaC4wIh6gBLhM6mhpI"
    "kif/kMef8GynARPhT48vvJq97+AcAMME49ZOfYOqsb15g2Df6CNse02Xyn+Bktm8apiJpN"
    "G9eBXIismQ7EaZ71gdzpbCjESi8MJpBNdEDOcpn42aOiwvKQhGIAc8L5Zaowy2fsSk2tmL"
    "wAdOdiDzHtF5DlW+oFPO6PttUoSeCXEbbpEvM/y1cT/C9g+juQ8YGw8/XfwDyneQdLiyBi"
    "UVveloaiTfOs0Zr5zoJEiPpV7VEFTXtUqGiPGrRq8pUpr3ghbqDau2UBA+l/VwsU1JKA9J"
    "wOYguNvmJPXP3VQDqib50bs9ur8tkLquJIbe9owRsPFu3yYk2UOgiSApc8xTYH9FDw1YV0"
    "3LLebJnTi4uPcuQ4W+b0/ZzeOv/66fStAF9BL4gwL1BnxqV5uaHyM0pkyg4MgVrQeZn+Ut"
    "1npSgrBssvCAJptmNwfW0f/4QPxz+HD9fXYGv3eHcbUE80j49/jrEtGl+LH8qSZeiHIMFM"
    "pSSJH2Ikn3DkLcbO67vMikPpxQqkpZp6t18p27Jfkm3Z33lMWZtl1VXa6Au+qPgmlvBDQ6"
    "71KY2djdcYC8jP2HigJ0bm2NqXlNGrkjfQK84b6C3kDSjIdJMHUkxmhi83w41R+swvwPi4"
    "dfq49JYEwaSq8MYM7RPaq4nXaDhUKS8HzYZhyG5OxISM7z5cIif2fuawD32kT2qQDRQsD9"
    "Eki1rDmfJQp8cZopXjayY4FnuZqRdWIRlLJUT9wkDINcGuygpXueCMixcFMFGJU2n3MCf5"
    "avlxcjzEb8pVVp3CDPvH5F41R/uZ3Kv1yOrsgjK09Z3INJcxsZez8L5TTNAS2Gf5DPpLuv"
    "BotEzwJMVlFvCXTmKhjpZvE9Gv0beZxcbQxoUFZz7XXryLeczKncbKnYsJ0YY6YTJY66yS"
    "CqNdM9yaYmnhYsLKFm8WPPcs6IuIv6MewmPyAd0r3N+Lm4QkNxu/YBVzw3Av8tNFswdvY1"
    "8xPd8EBuLJUTCZz06+nJ28edt5eJ415k+IMaj0fI7LH3R1y31+RVTZ6Q/pu+GmJ+GYWwi4"
    "yMt65+D6eks2dOWq7vb1tfLoRRtD4iV7XWBhW7V6CATz4DgnLlDXpf4mcrl5hD3GwRjfIA"
    "bG0H018hAC1BM84ga64Yq0GNgG2EYzl8qKMUAOWriHPYk9SBtSvLVvneAmZJP11HDEi1u/"
    "XtVyU3HcIV8Alqsco2/K9U1aq2s7YGv3elvnfCUCp+qkTjhaOK1r2KKkaaW21kJdPbQKHQ"
    "1sI/oWgltDiQZ0l7PYfyVaC8AN6duwIlqC5dXbv64yPuxCXbzZfdjz8eL8t4h8vljeXI41"
    "DOrKZbEurkcY0T+pGOHmYL6yWoSZuJgwz6Pk2Kq4p3kM9stjb8q/rH2fqOvklHAsnukxg5"
    "nmy09zBaLw+LUWN1I8NanSzffQU5s/bbxMXmKGzazcLStWRthBA83isGme1k3wGnyciT8b"
    "6mKcYTIg54LckC1fQfmzz0KLILloUlggLaboVqiR5qaJV7r5+VuUTBWWXDIJcw0SzCZhbv"
    "3y2RQrq7mSFiUOJjkAl2ZVJEwmq0Ing8UUhqu9MJwJfax56xolWucVRfRrU36btnGqIYbz"
    "OeV4hK3CWgmZ/lKjmaQoNWolpNniCsByawrYgtlOToF4jHvVyWT1Aknp0VuAoDXJOexl5a"
    "ObIsONFlbGbl+/3T6ktlZAPKI35389ISButpG/3NpGaX185nuM5u46zaGqrLsHlmKoqMKv"
    "JgjIyhBZZYptMIFiRthSraZK+m+JK+Mb5GHEVGaoB8lY/jviQiNjnqPEaxjfxOM26bvbHL"
    "3eqqQwE5CrOYKhyunoio8Uk9miunG6O9wYUnh4Yaa/VF+HWzT0jjCM9nPE+ztuPcw5IrLO"
    "g9x2Ebb/IlzfW9EidCcTA6raguqEVN+Tlwdi4vhItEAOXD84YmFuA0kt1/mbbMkdJg6Uqp"
    "wh6FkToGatuOy23JrC/Bl6Dd6oDULhppWw1RwR1PgvtEzLR5NdT9lnuVqoklafBWT8yper"
    "mz4LEfsHHeappairVCNJET34TocakV/JIv03uRMmOG+b+nxI77aPgYfE6xFS/BbzCZAP+I"
    "qORsAnHDuSnHeB7VHXRXZXlrjF5AY6OOeAudqukutCcuiJn6HASYkf40w25mMrUzOZ16ex"
    "sphmq0v2tfVtGCW/diXvwnuHwhyUi4P2KRYTt39C3B4KL2jm5qUuFEqXNEtrPP7ebv+wf7"
    "R30I8lStxSJkhyyrmiO65traaYjLheOh3EuAoNKJaOPI9qbTrPcrVhj+mcutzfr6Iv9/eL"
    "Fabsa5RXdqUMzE6BYxb2dh/1zQI7taJ79h/h1CDpNSnvSebNQJUYcwwgAe/OPgnXaYzlIG"
    "HqzBSRruw6+XzOorW4qBXcouGE0in4evlx0UWr9UplK33phEs1gPHTmiTpNmXRr03JPJuT"
    "t7w2kFdcRTIQNBrwxgwtxHZ/t8qiqqAqxFf1GcP02cV1Q6ylSxSsI+bZSnFfqaXkhVQ1nH"
    "f6bS5YFeolNKPfsTE9mjOXy0yPJgcp21SOoFkmXqvyugJ5owFuzNBCeM2+tI0U0Q0xN04d"
    "ak3zbI2go9TQGEqSWqyMUBiqCyCz+NygaVtmWRiNV98WpfBL0IA3xdI+c62G4jpG6b0Ypf"
    "fZo7L0VJ7ai7pKFZ8bENWg+qoquucUtQ0q874qMVCs08xhq7VJXHgjQNda+U04WgdvLXFk"
    "eQKmn6PXSgq6xxytQ7iWUwp8114qUp/lM1bEJloRZ5RwofgvkYCf5eY2zFGU2hRWQDvwAu"
    "I63WoXiQbjUzdmPpfZH8anri9TAOkddhLRG2+6gm1nWcjVP2wyzWaq9WlU68s/oaMkJeMp"
    "J3Q02crr7VSx8gRV8UrezoKVZ2JDL8eq++qqbSI51lzYU2rF+YrmGQNDmtXBn1IXvGHm2p"
    "oDQ/SW6JkPMYOxHx63H0zYbdWbATL7FLEeuhF9C92K3V6ZtkpKoR6WlEI9XIi74f/mVaku"
    "O7wy5DA2g6bnnAJ9Anv7B1rBzpijhRO7htMrG52V3NbQUCoUxLT96YjF+NIavvSYEqQ9yV"
    "NMNZ0h1c4J/qxe38P/AZsFeks="
)
