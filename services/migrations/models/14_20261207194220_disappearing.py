# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 14_20261207194220_disappearing.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Disappearing messages (issue 28): a conversation's ``ttl`` (seconds; null: messages stay), a
message's ``expires_at`` (ms; set only on messages sent while the ttl was set) and a push job's
(a job still due when its message expires is dropped, not sent). The expiry sweep reads
``messages`` by ``expires_at`` through a partial index (``WHERE expires_at IS NOT NULL``, on
SQLite and PostgreSQL alike): a message without it adds no index entry, so a plain send costs
the same as before. Nullable columns and a new index: no existing row is rewritten.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "conversations" ADD "ttl" INT;
        ALTER TABLE "messages" ADD "expires_at" BIGINT;
        ALTER TABLE "push_jobs" ADD "expires_at" BIGINT;
        CREATE INDEX IF NOT EXISTS "idx_messages_expires_at" ON "messages" ("expires_at") WHERE expires_at IS NOT NULL;
    """,
    "postgres": r"""
        ALTER TABLE "conversations" ADD "ttl" INT;
        ALTER TABLE "messages" ADD "expires_at" BIGINT;
        ALTER TABLE "push_jobs" ADD "expires_at" BIGINT;
        CREATE INDEX IF NOT EXISTS "idx_messages_expires_at" ON "messages" ("expires_at") WHERE expires_at IS NOT NULL;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_messages_expires_at";
        ALTER TABLE "conversations" DROP COLUMN "ttl";
        ALTER TABLE "messages" DROP COLUMN "expires_at";
        ALTER TABLE "push_jobs" DROP COLUMN "expires_at";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_messages_expires_at";
        ALTER TABLE "conversations" DROP COLUMN "ttl";
        ALTER TABLE "messages" DROP COLUMN "expires_at";
        ALTER TABLE "push_jobs" DROP COLUMN "expires_at";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1T27gW/iuafCnMpCykvF32ywVKd7vbQofSuztTdoxiK4mKI7mWDOX28t+vJNuxnd"
    "iOFeLgGH2CSOfI9mP5vOno6GdnTB3ksq1j5GN71DkCPzsEjpH4Z6qnCzrQ85J22cBh31Wk"
    "MKHpM+5Dm4vWAXQZEk0OYraPPY4pEa0kcF3ZSG1BiMkwaQoI/h4gi9Mh4iPki46v/4hmTB"
    "z0A7H4p3drDTByncytYkdeW7Vb/MFTbe8Jf6cI5dX6lk3dYEwSYu+BjyiZUGPCZesQEeRD"
    "juTw3A/k7cu7i54zfqLwThOS8BZTPA4awMDlqcftW0lbx7LOL66sz2dXltXRAMimRIIrbp"
    "Wppx/KW3jd29k92D18s797KEjUbU5aDh7DSyfAhIwKnvOrzqPqhxyGFArjBNQ75DN5SzPI"
    "no6gnw9timUKX3Hj0/jGaJYBHDckCCezahUQj+EPy0VkyOWn0dvbKwH0P8eXp78fX24Iqk"
    "15SSo+g/DrOI+6emGfRD1BWX5UGghH5C1Ed2d7uwK6gqoQXdWXRVdckaPw084i/Mfni/N8"
    "hFMsUyg72Obgf8DFbEZWrAHaJeBKMOTIY8a+u2lMNz4e/z0N9+mHixMFDmV86KtR1AAnAn"
    "opoAe3KWkiG/rQvr2HvmPN9NAeLaKd7Rr3xtMtkMChAlI+sXy+SGW97b8nA5qnzKKeUmWG"
    "x0PxVq0x4rCSRuv8iR5+uYNugASBzRmAfRpwIHQYkLK1DxkCmDPkDsCGbGT2CI0hiGTl5l"
    "Zn6vUtY7wn6NJb9KAjkCLy5Qik59WnGXG0v1tBGu3vFgoj2TVHv8pXrKVdY4YWSv+l6daG"
    "iKDjgI/O7qQeyTOpJ53lVrUgs5CkY9UE0bHnIeK8psR9AC4dAjoAPrqjNpQEQo4QBziYye"
    "FZV/RAB/QfgLiA/wD6Pr1FPuAU3GL7Vui4OyFYEJMShc1KqDovtGQ34AQPX4on8K9e782b"
    "g972m/3Dvd2Dg73D7YlLMNtV5hucvP9NugeZD22+vxDkwV8szYJc9Nsgy5alOhJoHXSHbS"
    "1dkXAsBHA0e5uJ75teBXzf9ArxlV1ZfG/Fc2kZPRF9Cyfvzn4VL2y/2AnbnwY31F7VpXJI"
    "P18qrwO0KxPMDTF73iqxcyVUPMkzfNLdpaZPKL6EESAoqxo/BEDbFpYEUFxgQH1AifCZ1F"
    "DSRJG/Aob8X4EyXIQPBT7/fvy6t7cPMAOMUx85ObbO8sY1pk2Dv6D1MW3W3yl+RsumcSqi"
    "ZtPGcyEXImusA3GaZ3UgdzprCrHSC9YIspEOyFkuEz+bKypsH0koLJgTzi9ThVk+Y1dqas"
    "XkBaAfHvYR034BWb6FXsB8f7StRkkCv4yw3S4w/7N8NcH/EqY/sakjb0tDyKd5VqhJv7Fw"
    "Eb5+MX9YQcofFgr5w2kZ70LGLeFL6c/yaU4zz9cwfPCFKa94Jm6g2rtlAQPpf1cLFNSSgP"
    "ScDmILjb5iT1z91UA6pm+dG7PTqyJ6BVVxpLY3I36jRbu8WBOlLoKkwCVPsU0B3Rd8dSE9"
    "aVlttszJxcUHOfIkW+bk/ZRMPf/y8eRMgK+gF0SYF5gUxqV5ubrulBKZsgMjoGZ0Xqa/VP"
    "fZKcqKwfILgkCa7Qjc3DhHP+Hj0c/+480N2Ng52tkE1BfNw6OfQ+yIxi3xQ1lZDH0XJJip"
    "lCTxQ4wUEI782dh5fZdZcii9WIG0VFPv7FbKttwtybbc3Z6nrM2yaq1+kvgmFvCRIq7VKY"
    "3ttdcYM8iP2dDSEyNTbO1LyuhVyRvoFecN9GbyBhRkuskDKSYzwxeb4cYofeYXYHzcOn1c"
    "ek/CYFJVeCcM7RPay1+kGyMib8mCrquD8RRb+5Besv2Xwsvyka25xSmf+0m7nRoG/io2O2"
    "WyLLDWPsmI3EzzOdOc8xwpUpw4yvOExzqv/Dxpb69GnCstWMb9aCVlyvKLGN/9eYncSVBq"
    "CusodPVRDbKG9t5jPKXi1mhmPNYZCIzQygkBJjgWB/9SL6xCjqzKU33FQMQ1wp7arKO26D"
    "AuXhTAROWzpqN2OTmxi4+TE7j7qiKYqlN4x/+YlNjmOCUmJXb1JrT8iPRje2kuE/lYzPH+"
    "RjFBC2Cf5TPoLxhZRYNFYtoprhZZfqvOLaSuVsgppl9hyGk8MYbWzo0ZB1w7p2LCYxIqNB"
    "IqhGNNtKFOmAzWOskrwmjXXAVLsbRwjXdpa+oznnsW9FnE31Ef4SH5Ez0o3N+Lm4Qkd5NU"
    "QXLJmuFe5KeLZh/eT3zF9HwTGIgnR+FkPj3+fHr89qzz+DypPx/D+Gsn1+Un8xN+ovhtZa"
    "c/VJ0gYkOqGgcUPxkT95fn3ZczXJNrcvIAhEvXlbk7kClPnw7Av6HrvmJHKmHHp/cM3Nxk"
    "cpNubsIcHiZ5JFF4nVcMBET6L9ckfjKwcXMT5v/APr1T9Y7C4MIY+rfI39wCf/mYc0RknC"
    "EcSd2bGEqgQZgARAzTDTfkDqgvR1YEDNxjPoqfjP0qRh2LCzhhc3YkH9nigYqjFpFPG3+S"
    "0gidDl58ne01sYzGxTLyhWq5GjM6rFyHpS0Fbadu5Z50S6Z4U8Nza7/E3ZCc4Y+hbso3HM"
    "KuOYZDqASrGw6KvhsVsRDq1EbAE5ZBJqwv1PyGbOjKLN1NqbOJI9sYEhPA7wIbO6rVRyCc"
    "I0e5Jkc9l7omUqkPsM84GOI7YQAMofd64CNhsfiCR9xAN8owFgM7ADto7FFZARTIQQtrkk"
    "1p9i742glvQpkEOesYPzvJS05viZVk4qcf1UCL50BiGfyw4tdmZXfSxp9pR40gXqb8Af76"
    "/ezyDCSU4P1nID4rcP7lw4fQ4DVZ0XUnMRpTw5gaL8bUSMRe1UmdcLRwWtdQ+EIzyGZsuc"
    "rQKnQ0sI3pWwhuDYX/hFEyC+6VaC0AN6JvQ1pcCZZXZ39fZULwMwmI44eo58PF+W8x+XRW"
    "4tTOXRhWK6+aAhrTm6TPxZM+02FYzdTbvA0qBnsN7E1R0ZVXH/LcnIMBimf6hMFM88WnuQ"
    "LR4lTHRknz1KRK199DT5V1cvAiu90ybCbxaFGxMsAusjSPHEnztG6C1+DjjIJxXxfjDJMB"
    "eS7Ino/uMLrXUZApFqMiF1eRja5K2VIJ3pDlsE84N4fmE56TP+Ph6rkzYXJgvDwls1zg3M"
    "0xc3lkBg1DvixkzX6JV3d+kbe15T1sgYv7KOcmlY8CIvpukjsTtmMOfDQQQwNOjwC8JmHa"
    "CgiIHC/OjwkbXzFA70k6RWYLHHMwFp+YrLqDx5izLSkpJevNzcz6W/ea3Ed5N4EM4aqh0w"
    "TiAi61byuW6EnW0MQENskxJjmmeb52/StW0XesmUmb5TILsXPdPLMwuHLfLlSDVl/L8cgw"
    "tVCG1ODfmVDoi7F4wwOUPgm/Bcn8/hzjd4qi1A6OTlny0sRLLZ88yZGODm0xe7sbM6HLTL"
    "5mJY+2KUxkjjuq+SweSlxMcgAu3QCYMJkNgDqbLc3RUrUfLWVsuxUXv6REq5JXTL8y5bdu"
    "pRcbYjifU44H2C6stp7pLzWaSYpSo9p6mm1yhqisogQ2YLaTUyAe40F1Mln/XFL69B4gaI"
    "8284usL3V0c0xpo4WVsdtXb7f3qaOV/BTTP2lht2kaedUru6YQ9csNdKX18WngM5pbIDGH"
    "qrLutmzFUFGFX40QkLXls8oUO2AExYxwpFpNHQq+Ia6M75CPEVN7EX1IZOkBOOBCI2Oeo8"
    "RrGN/E49bpu1sfvd6qxRMTkKs5gqEO5NAVHykmU01x7XR3VIrg7A6pwkxFpQrC/lJ9HWc5"
    "IElaOWUrqiAwqShwX1QqaCoXKixc5AS+vDwQEydAogVy4AXhIe1TaV61XOeabMiaBi6Uqp"
    "wh6NsjoGatuOymzLViwRhtgbeqllVUJiFqdYz33vQvtEzLNycRqFEqafmpQMavfLm66ZMQ"
    "sX/Qfp5airtKNZIU0dY32teI/EoW6b/JqgdgQ4p+GvA+/bF5BHwkXk9cfE4+4Gs6GICAcO"
    "xKct4Fjk89D4WF9jC5gy528iPAtVwl14Xk0Bc/I4GTEj/GmWzMx1amZjKvT2NlMc1Wl+xr"
    "69swSn7lSt6DDy6FOSiXbMhKWEzc/glxeyi8oLGXl7pQKF3SLK3x+J90elPmQEj0g2tbqy"
    "kmI64XTgcxrsIzHwoiI4HI96lWgbEsVxvqCU2py729Kvpyb69YYco+s5H2uad6g7ziK2Xg"
    "dwoc46i3O9c3Dv2Eiu7xX8KpRNJrVd6rzFuCKjHpCEAC3p1+FK7rEMtBotSlW0S6suv40z"
    "mL10LjVnCP+iNKb8GXyw+zLnKtVypbaU0nvKoBjJ/cnM+vuzaLrm1KplqfvPGVgbzsc3OV"
    "oNGAd8LQQmz3dqosaguqQnxVn3EMnl1cN8RaukThOm6erTTpK7WU/IiqmplU/CZyDY9ssD"
    "DSS2hMv2FjejRnLpeZHk0OErepJkSzTLxW5dWF8kYD3AlDC+E1+wLXUkQ3xNw4kRW18myN"
    "sKPU0OhLklqsjEgYqgsgs/jfoGlbZlkYjVffFrHoS9CAN8XSPnPNFDpaS+nREKX3yaeyzH"
    "Oe2ou7ShWfFxLVoPqqKrrnFLUNquS3LDFQrNPUXw2kY/rWlR9ZvsSFdwJ0rZX3hKN18NYS"
    "R2Yc8iBHr5UcnjbhaB3CtdRXDTxnoUh9ls9YEetoRZxSwoXiv0QCfpab2zBFUWpT2CGt5Y"
    "fEdbrVHhINxqduzHwusz+MT11fpgDSO1g0pjfedAXbzraRx/MCFqW1EtNsplqiRrXE/NMw"
    "S1IynnIaZpOtvN52FStPUBWv5G3PWHkmNvRyrLovntqmk2PNRT2lVlygaJ4xMKR5EtdTzu"
    "BqmLm24sAQvSd65sOEwdgP8+0HE3arczPGGOuhG9O30K3Y6ZVpq6QU7UFJKdqDmbgb/m9e"
    "lfCy82AiDmMzaHrOKdBHsLe3rxXsnHC0cGIvXyY3Oyu5raGhVCiIafvTMYvxpTV86SElSH"
    "uSp5hq2qTYzgn+rF7f4/8B6DTs7w=="
)
