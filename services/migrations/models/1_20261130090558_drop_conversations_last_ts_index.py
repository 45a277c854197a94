# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 1_20261130090558_drop_conversations_last_ts_index.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_conversatio_last_ts_f4986c";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_conversatio_last_ts_f4986c";
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        CREATE INDEX "idx_conversatio_last_ts_f4986c" ON "conversations" ("last_ts");
    """,
    "postgres": r"""
        CREATE INDEX IF NOT EXISTS "idx_conversatio_last_ts_f4986c" ON "conversations" ("last_ts");
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXV1T4zYX/iua3BRmwhbC50uvAsu2dBfY2WXbzmw7RrGVRI0jeSUZyFD++yvJdmwntr"
    "FDPo2uINI5sv1YPuc8OsfyU2NIHeTyd23EsN1vnIKnBoFDJP+Z6GmCBvS8uF01CNhxtSiM"
    "ZTpcMGgL2dqFLkeyyUHcZtgTmBLZSnzXVY3UloKY9OImn+AfPrIE7SHRR0x2fP9HNmPioE"
    "fEo5/ewOpi5DqpU8WOOrZut8TI022XRHzQgupoHcumrj8ksbA3En1KxtKYCNXaQwQxKJAa"
    "XjBfnb46u/A6oysKzjQWCU4xoeOgLvRdkbjcjhW3NSzr+ubW+npxa1mNCgDZlChw5alyff"
    "U9dQo7rb2D44OT/aODEymiT3PccvwcHDoGJlDU8FzfNp51PxQwkNAYx6DeI8bVKU0he96H"
    "LBvahMoEvvLEJ/GN0CwCOGqIEY5n1TIgHsJHy0WkJ9Sj0To8LAD0j/aX89/aX7ak1LY6JJ"
    "WPQfB0XIddraBPoR6jrB6qCgiH4jVEd293twS6UioXXd2XRlceUaDg0U4j/PvXm+tshBMq"
    "Eyg72BbgP+BiPmUrNgDtAnAVGGrkIec/3CSmW1ftvybhPv90c6bBoVz0mB5FD3AmoVcGuj"
    "tIWBPV0IH24AEyx5rqoS2aJzvdNWwNJ1sggT0NpLpidX2hy3rfuSRdmuXMwp5CZ4aHPXlX"
    "rSESsJRHa3xEo5/voesjKWALDmCH+gJIHwaUbe1AjgAWHLldsKUaud1HQwhCW7n9rjFx++"
    "Yx3it86QCNqhikUHw+Bmm1/jRljo4OSlijo4NcY6S6XvCv6hZX8q6RQg2t/9x865qYoLYv"
    "+hf3yo9khdTjzuKoWopZSMnxcoao7XmIODuUuCPg0h6gXcDQPbWhEpB2hDjAwVwNz5uyBz"
    "qgMwLyAGwEOowOEAOCggG2B9LH3UvDgriyKHzaQi3yQHOmAWe491aYwP9arf3949bu/tHJ"
    "4cHx8eHJ7pgSTHcVcYOzy18VPUg9aC/zBT8L/nxr5meiXwdbNi/XEUProHtsV/IVscZMAI"
    "ezdz3x3W+VwHe/lYuv6krjO5DXVSnoCeVrOHn3jsqwsKN8EnY0CW7gvcpb5UD+Zau8CdAu"
    "zTCvSdjzXpudW+niSVbgk+wuDH0C8yWDAClZNvghANq2jCSA1gJdygAlkjPpoVSIon75HL"
    "FfgA5cJIcCX39r77QOjwDmgAvKkJMR68xvXBParPETtDmhzeaT4hVGNmvnIhYc2nguFNJk"
    "DatAnNRZHsiNxoZCrP2C1Ye8XwXktJZZP3vRVNgMKSgsmLGcX+QK03omrqzoFeMbgB49zB"
    "CvfAPSejPdgHXjoyvBXy2xDWZ4ANJ6Bv8N5FXfuKYLU4RKtzeLmJQiJuUY1EIqM1YZOdfQ"
    "G+ZTFP23AtKRfO3iu73WSZkVrNZJ/hKW6pugKUE2I4uEU+oiSHK4SkJtAuiO1FsU0uOW5Z"
    "YRnN3cfFIjj8sIzi4nbOr1t6uzCwm+hl4KYZHj6kys93Z93TklqpYBhkBN+bxUf6HvsxOS"
    "JVcRbwgCSbVTcHfnnD7B59OnzvPdHdjaO93bBpTJ5t7pUw87svGd/OFCLiyOfkgRzHWthv"
    "whR/KJQGx6UXFxh5nzGmO+A6mpp947KFWGdlBQhnaw+5KzNvmmMd5lnHW+q55y1NEDUs1t"
    "JLWW5zR2N95jTCE/5D2rmhmZUKtftrpVJqHayk+otqYSqhqyqlnVhJKZ4bPNcBOUrvgGGI"
    "67SI5LH0iwmFQW3rFC/Yz2fNZrKhCqBMtBw064ZDdhYkLFDx+/IHfMfiawDznSlR5kAw3L"
    "czTJotZwpjwvknGGaGVwzRjHfJaZuGElqlR0pchPHIRafezpclldJMuFvFEAE11RkqSHGV"
    "Ups4+TwRC/a6qsO2UY9o8pSlkf72eKUpZjq9OJNuhUJ5FJLRNizxbh/UsxQTNgn9Yz6M9I"
    "4VF3lsWThJZJLs+c3KduJW4TyS+R2wzHwdDGLQsOfVE5eTfWMZm7Cpk7DxNSGepYyWBdJU"
    "sqg/aKy60JlRomE+aWvJli7mnQpxH/QBnCPfIRjTTul/IkIcksU87JYm4Y7nk8XTYz+DDm"
    "isn5JjGQV46CyXze/nrefn/ReF5NjvkKcQ61n8+g/EFXs5jza6HSpD+Ub4Zvg0hibiPgIZ"
    "Zm5+Dubks1NFVWd/vuTjN62caRvMmsCWzs6FaGQDAPTjPWBRZ1qL+JSjd3MeMC9PA94qAH"
    "vZ0uQwhQJnXkCTTDjLQc2AHYQUOPqq00gBo09+XeeO1BxZDyrn1vBCehmuzXLke8ufz1vN"
    "JN+esO2Qaw2OUYf1Psb5JevTIBWzrrrR35ig1O2Ukda9RwWi/g3Y2KUWptI9T5Q6vRqYBt"
    "JF9DcBfw7jp6zEj238rWHHBD+TpkRAuwvL346zbFYac2DBuOwp5PN9e/RuKTu4hN1FjDYM"
    "OtNNb5G7VF8q/apW1zMJ/bJm2pdTEZnkfFsWVxT+oY7GfH3uyL8XZq2oONLz7L2YDUqlDu"
    "1hhjiWaJ3TG8pPBc3+76HmWLw5ftTUXA2kzoZgEzNxUBZpuKpQA8/z0UKHExyQC4MG0UK5"
    "m0UZUUndkSZOFbgpjY7s3EdtdU4C62c99XTPUXxnUkIVnhfcWk2nh7MlUeCrZgulNQIC9j"
    "pDu5eoNQSTL6ABC0+xk7Uc99dLMD2ho/Tya0XEVo2aFOxobr+csvkbz5OMEr1l7Mq1zGXy"
    "ugzn3GaeabHxlSpX23ZWuFki78to+Aejsz7UyxA/pQzghHudXEfqNb8sj4HjGMuK7OYJD0"
    "1L9dIT0yFhlOfAHjmyWjTXruNsev1yoxa9aMFkyy9SvtVc1HQsm8JrJxvjsszsz9skqqv9"
    "Bfh2WS1b6vEtVUjmssHxgWAhH1rqUqfQzbf5LU90G2SN/J5YB6fx/9+SafqcMDOXF8JFug"
    "AJ4f7P86UcS5kOP8TbZUlacLlSvnCDK7D/SslYfdVuWh3B+id+C9LtINC0fDVrN/+do/oU"
    "VePprs1Zx9WquGLmn+W7MYXvl2fdNnaWJ/p50stxR1FXokZaKtf2mnwsqvUlH8TVWjBh8D"
    "pL7o0MftU8CQvD3Sij9g0QfqAndotwt8IrCrxEUTOIx6HnKaaps5TO6hizO+frGwo2RSSA"
    "GZ/BkanIT5MWRybR62IjeTun0Vkl9JtUXZvrreDePkl+7kPThyKcxAOX/RPqFi1u1fsW4P"
    "JQsaelnZ9VzrklSpDeN/5UffE1uqoUdROVpNKBlzPau5NlRh1budqJVAxBit9OJXWqsO73"
    "nU+0PMinrd6gCzkUPMwt7mi9wsiFNL0rM/JalBijVp9qTqZqAujDkFkIAP51eSOvWwGiQs"
    "nRkg0lRd7c/XPMrFRa3gAXX6lA7Aty+fpinaQo9UlOlL1gTqAQxPWydLtylJvzoV82xOae"
    "3SQJ7zTk4i+nhsWXjHCjXE9nCvTFJVSuXiq/tMYLpyc73SaOn5/yav+q4="
)
