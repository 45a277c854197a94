# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 13_20261207170453_pins.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Pins (issue 28): the ``pins`` table (a pinned message of a conversation, one row per message,
owned by the message service; read by conversation, newest pin first) and a nullable group
column, ``pin`` (who may pin; null is the default, "members"). A new table and a nullable
column: no existing row is rewritten, on PostgreSQL nor on SQLite.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "pins" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "message_id" VARCHAR(26) NOT NULL UNIQUE,
        "seq" BIGINT NOT NULL,
        "pinned_by" VARCHAR(64) NOT NULL,
        "ts" BIGINT NOT NULL
        ) /* A pinned message of a conversation. */;
        CREATE INDEX IF NOT EXISTS "idx_pins_conv_e45f32" ON "pins" ("conv", "ts");
        ALTER TABLE "conversations" ADD "pin" VARCHAR(8);
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "pins" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "conv" VARCHAR(140) NOT NULL,
        "message_id" VARCHAR(26) NOT NULL UNIQUE,
        "seq" BIGINT NOT NULL,
        "pinned_by" VARCHAR(64) NOT NULL,
        "ts" BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_pins_conv_e45f32" ON "pins" ("conv", "ts");
        COMMENT ON TABLE "pins" IS 'A pinned message of a conversation.';
        ALTER TABLE "conversations" ADD "pin" VARCHAR(8);
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "conversations" DROP COLUMN "pin";
        DROP TABLE IF EXISTS "pins";
    """,
    "postgres": r"""
        ALTER TABLE "conversations" DROP COLUMN "pin";
        DROP TABLE IF EXISTS "pins";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1zm7gW/isaf2ky46aJ83qzX26StrvdtkmnTe/uTLPjyCDbqrFEkbDr25v/fiUBNt"
    "iAkWMcTPQpsXSOgAdx3nR09KsxpDZy2N4F8rDVb5yDXw0Ch0j8M9fTBA3ourN22cBhx1Gk"
    "cEbTYdyDFhetXegwJJpsxCwPuxxTIlqJ7ziykVqCEJPerMkn+IeP2pz2EO8jT3R8+0c0Y2"
    "Kjn4hFP91Bu4uRYyduFdvy2qq9zSeuantH+FtFKK/WaVvU8YdkRuxOeJ+SKTUmXLb2EEEe"
    "5EgOzz1f3r68u/A5oycK7nRGEtxijMdGXeg7PPa4nfasrdFuX9/ctr+8uW23GxoAWZRIcM"
    "WtMvX0PXkLL1sHR6dHZ4cnR2eCRN3mtOX0Ibj0DJiAUcFzfdt4UP2Qw4BCYTwDdYQ8Jm9p"
    "AdmrPvTSoY2xzOErbnwe3wjNPICjhhnCs1m1CYiH8GfbQaTH5afROj7OAfQ/F5+v/rj4vC"
    "OoduUlqfgMgq/jOuxqBX0S9RnK8qPSQDgkryG6B/v7BdAVVJnoqr4kuuKKHAWfdhLhP7/c"
    "XKcjHGOZQ9nGFgf/Aw5mC7JiC9DOAVeCIUceMvbDiWO68/Hi73m4rz7cXCpwKOM9T42iBr"
    "gU0EsB3R3EpIls6EBrMIae3V7ooS2aRbvYNWwN51sggT0FpHxi+XyhynrdeUe6NE2ZhT25"
    "ygwPe+KttoeIw0IarfEeTV6NoOMjQWBxBmCH+hwIHQakbO1AhgDmDDldsCMbmdVHQwhCWb"
    "m715h7fesY7xG6dIAmOgIpJF+PQHpafZoQRydHBaTRyVGmMJJdS/SrfMVa2jViqKH0X5tu"
    "rYgIuvB5/81I6pE0k3ramW9VC7I2knSsmCC6cF1E7JeUOBPg0B6gXeChEbWgJBByhNjAxk"
    "wOz5qiB9qgMwHiAt4EdDw6QB7gFAywNRA6biQEC2JSorBFCVXmhdbsBlzi3nPxBP7Vah0e"
    "nrb2D0/Ojo9OT4/P9qcuwWJXnm9w+e536R4kPrTl/oKfBn+2NPNT0a+DLFuX6phBa6MRtr"
    "R0xYxjJYDD2VtNfA9bBfA9bGXiK7uS+A7Ec2kZPSF9DSfvwUkRL+wk2wk7mQc30F7FpXJA"
    "v1wqbwO0GxPMFTF7XiuxcytUPEkzfOLduaZPIL6EESAoixo/BEDLEpYEUFygSz1AifCZ1F"
    "DSRJG/fIa834AyXIQPBb78cfGydXwCMAOMUw/ZKbbO+sY1pk2Fv6DtMW223yl+Qsumciqi"
    "ZNPGdSAXImuoA3GcZ3MgNxpbCrHSC+0+ZH0dkJNcJn62VFRYHpJQtGFKOD9PFSb5jF2pqR"
    "VnLwD9dLGHmPYLSPKt9AKW+6N1NUpm8MsI22CF+Z/kKwn+5zD9iUVteVsaQj7Os0FN+p0F"
    "i/Dli/mzAlL+LFPIn83LeAcy3ha+lP4sn+c083wLwwdfmfKKF+IGqr2ZFzCQ/nexQEEpCU"
    "hP6SDW0OjL9sTVXw2kI/rauTEHrSKiV1BlR2pbC+I3XLRLizVR6iBIMlzyGNsc0B3BVxbS"
    "05bNZstc3tx8kCNPs2Uu383J1OuvHy/fCPAV9III8wyTwrg0z1fXXVEiU3ZgCNSCzkv05+"
    "o+K0ZZMFh+QxCIs52D+3v7/Bd8OP/Vebi/BzsH5we7gHqiuXf+q4dt0bgnfigri6EfggQz"
    "lZIkfoiRfMKRtxg7L+8yaw6lZyuQmmrqg6NC2ZZHOdmWR/vLlLVZVi3VTxLfxAo+Usi1Oa"
    "Wxv/UaYwH5Ieu19cTIHFv9kjJaRfIGWtl5A62FvAEFmW7yQIzJzPDVZrgxSp/4BRgft0wf"
    "l45JEEwqCu+UoX5Ce/2LdENE5C21oePoYDzHVj+k12z/xfBqe8jS3OKUzv2o3U4VA38Tm5"
    "0SWRZYa59kSG6meco01wjPxL+HYSdcAJgzWELGt+8/I2caS5kDPoy4fFSDbKGZ8hDNr6g1"
    "nCYPZcavQrRSIlczHLNjVrEXViC1U6VXvmAg5OpjV+0xUTtLGBcvCmCi0jDjwaaUVM7Vx0"
    "mJN31TgTfVKZy6f0wmZ3VsaZPJuXnLT35E+iGpOJdx2FfzF79TTNAK2Cf5DPorBgRRd5VQ"
    "bIzLpKqsnBJHHa1ISUS/wUjJcGoMbYX1nXAyfa6dCjDlMXkAGnkAwh8k2lDPmAzWOjkXwm"
    "jXXLyJsdRwaXJtS8ELnnsS9EXE31IP4R55jyYK93fiJiFJ3duTkROxZbhn+emi2YPjqa8Y"
    "n28CA/HkKJjMVxdfri5ev2k8PE3GyscgbNhIdfnJ8jyVMOxY2OkPVCcI2ZAqIgHFT8bE/a"
    "V59/kMd+SOXE6AcOmaMuUEMuXp0y74N3ScF+xc5Zl4dMzA/X0ipeb+Pkg9YZJHEgXXecGA"
    "T6T/ckeiJwM79/dB2grs0JEq0xMEF4bQGyBvdw/85WHOEZFxhmAkdW9iKIEGYQIQMUwz2E"
    "fapZ4cWREwMMa8Hz0Z+02MOhQXsIPm5EgessQDZUctQp82+iSlETofvPi22GtiGZWLZaQL"
    "1Xw1ZnRYvg6LWwraTt3GPemaTPGqhue2fmW2IqmuHwPdlG44BF1LDIdACRY3HBR9M6y9IN"
    "SphYArLINEWF+o+R3Z0JTJpbtSZxNbtjEkJoDXBBa2VauHQDBHzlNNjnIudUekUu9ij3HQ"
    "wyNhAPSg+7LrIWGxeIJH3EAzTIwVA9sA22joUlm4EshBM0tpzWn2JvjWCG5CmQSPXcd4dm"
    "m068p6M0reKPlno+RnAqfopJ5x1HBal1ApQTO8ZayowtAqdDSwjehrCG4JleLQz5Q8tlvR"
    "mgFuSF+HPKocLG/f/H2bCH4vZKwNJ2HPh5vr3yPy+TS2ua2eMChvXTRnMKI3WYKrZwnGA6"
    "CauZppOxoM9hrYmyqUGy9X4zopleSzZ/qUwUzz1ae5AlF4/Do2SpynJFW6/R56rA6QjVfZ"
    "HpVgMyk/q4qVLnZQW/OMijhP7SZ4CT5O3x92dDFOMBmQl4LsemiE0VhHQcZYjIrcyoOJPu"
    "HU7IlPeEnmhIuLZ00EaWHRwoTMb4BLt0Us5ZG5Ewx5svIuexUtx7ySt7XnTvbAzTjMtohl"
    "IoCQvjnLmgjaMQce6oqhAafnAN6RIGEB+ESOF2VGBI0vGKBjEk+O2AMXHAzFK5ZlQvAQc7"
    "Ynv1TJen+/sPLSvCPjMOPClyFENXScQFzAodagYE2R2eqJmLomLcKkRVTP1yt/xST8jjVz"
    "KJNcZiFwqZthFqY27lsEarDd0TJ8E0w1lCEl+BcmFPdsqtwFJ758EuY4kpndKcbvHEWuHR"
    "weC+PGidda73WaHRueMmF29VZmQueZfNVKG6xTmMKcz1Ly4SGUOJikAJy79WvGZLZ+6Wyz"
    "M2fhlH4WjrHtNlytjxKt0kMR/caU37bViquI4XxNOe5iK7M8dKI/12gmMUqN8tBxtumhh7"
    "J+DtiByU5OgXiMiepksmCzpPToGCBo9VPOt1/76OZcxUoLK2O3b95u71BbK/kmon/UwmLV"
    "NPKmk29M5dznG+iK6+Mr32M0tTReClVh3d22FENBFX7bR0AWw04qU2yDPhQzwpZqNXaK8Y"
    "64Mh4hDyOmdqF5kMhN57DLhUbGPEWJlzC+icdt03e3PXq9VosnJiBXcgRDnSCgKz5iTKaO"
    "3tbp7nAT+psRUiV5sjapB/25+jrKckCStHDKVrh3fLqXfJxVJGYuFyooWWP7nrw8EBPHR6"
    "IFcuD6wanSc2lepVznjuzI3ewOlKqcIehZfaBmrbjsrsy1Yv4Q7YHXqopRuEE+bLWN9171"
    "LzRPy1cnEahSKmn9qUDGr3y+uumTELF/0k6aWoq6cjWSFNHt77SjEfmVLNJ/k7vuwY4U/d"
    "TnHfpz9xx4SLyeqOyYfMCXtNsFPuHYkeS8CWyPui4KSqxhMoIOttMjwKVcJdWF5NATP0OB"
    "ExM/xpmszMeWp2YSr09jZTHOVpbsq+vbMEp+40rehROHwhSUczYEzVhM3P4RcXsovKChm5"
    "a6kCld4iy18fhbB0enR2eHJ0dTiTJtyRMkKSfYoZ9c21qNMRlxvXI6iHEVKnA+LPI8qlXg"
    "KslVh3o2c+ry+LiIvjw+zlaYsq9SXtmtMjAbGY5Z2Ntc6psFdmpB9+wv4dQg6TUp70nmzU"
    "CVGHMOIAFvrz4K16mH5SBh6swAkabsuvh0zaK1uKgVjFGnT+kAfP38YdFFK/VKeSt98YRL"
    "NYDx06ok6bZl0a9OyTzbk7e8MZDXfNRNIGg04J0y1BDb44Mii6qCKhNf1WcM0ycX1xWxlj"
    "6jYB0xzVaa9uVaSl5IVcxM0tzylwxWhXoJDel3bEyP6szlPNOjykHKOtUkqJaJV6u8rkDe"
    "aIA7ZaghvGZf2laK6IqYG5eyolOarRF05BoaHUlSipURCkN1AWQWnys0bfMsC6PxytuiFH"
    "4JGvDGWOpnrplCO1spPSqi9D55VJa5TVN7UVeu4nMDohJUX1FF95SitkKV5NYlBrJ1mvqr"
    "gXREX7vyF+uXuHAkQNda+Z1x1A7eUuLIjEPup+i1nMOjphy1Q7iU+p6+a68UqU/yGStiG6"
    "2IK0q4UPyfkYCfpeY2zFHk2hRWQNv2AuIy3WoXiQbjU1dmPufZH8anLi9TAOkdrBjRG2+6"
    "gG1nWcjlaQGL3Fp9cTZTrU+jWl/6aYA5KRmPOQ2wylZea7+IlSeoslfy9hesPBMbej5W3V"
    "dXbRNJsebCnlwrzlc0TxgY0jyJ6DFnEFXMXNtwYIiOiZ75MGUw9sNy+8GE3da9GSCxTxHr"
    "oRvR19CtOGjlaatZKdTTnFKopwtxN/zftCrVeeeRhBzGZtD0nGOg92Hr+EQr2DnlqOHEXr"
    "9MrnZWcl1DQ7FQENP2pyMW40tr+NI9SpD2JI8xlXRebT0n+JN6fQ//B587bfQ="
)
