# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 12_20261207165930_message_previews.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Link previews (issue 28): a text message's stored preview of its first https link (``preview``:
{"url", "title", "description", "image"}), written once fetched, cleared by a recall or an edit.
Null on the existing rows.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "messages" ADD "preview" JSON;
    """,
    "postgres": r"""
        ALTER TABLE "messages" ADD "preview" JSONB;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "messages" DROP COLUMN "preview";
    """,
    "postgres": r"""
        ALTER TABLE "messages" DROP COLUMN "preview";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1T27gW/iuafFmYSXshhJfLfrlA291uC3Qovbsz7U5QbCVR40iuZAeyvfz3K8l2Yi"
    "e2Y4U4OEafINI5sv1YPm86OvrZGFEbOfz1GWLYGjROwc8GgSMk/pnraYIGdN1Zu2zwYNdR"
    "pHBG0+Ueg5YnWnvQ4Ug02YhbDLsepkS0Et9xZCO1BCEm/VmTT/APH3U82kfeADHR8fVv0Y"
    "yJjR4Qj366w04PI8dO3Cq25bVVe8ebuKrtPfHeKUJ5tW7Hoo4/IjNid+INKJlSY+LJ1j4i"
    "iEEPyeE95svbl3cXPmf0RMGdzkiCW4zx2KgHfceLPW63M2trdDpX17edz29vO52GBkAWJR"
    "JccatcPX1f3sKr1n77uH1ycNQ+ESTqNqctx4/BpWfABIwKnqvbxqPqhx4MKBTGM1DHiHF5"
    "SwvIXgwgS4c2xjKHr7jxeXwjNPMAjhpmCM9m1SYgHsGHjoNI35OfRuvwMAfQ/57dXPx+dr"
    "MjqHblJan4DIKv4yrsagV9EvUZyvKj0kA4JK8huvt7ewXQFVSZ6Kq+JLriih4KPu0kwn98"
    "vr5KRzjGMoeyjS0P/A84mC/Iii1AOwdcCYYcecT5DyeO6c7l2V/zcF98vD5X4FDu9ZkaRQ"
    "1wLqCXAro3jEkT2dCF1vAeMruz0ENbNIt2sWvUGs23QAL7Ckj5xPL5QpX1pvue9GiaMgt7"
    "cpUZHvXFW+2MkAcLabTGBzT51xg6PhIElscB7FLfA0KHASlbu5AjgD2OnB7YkY3cGqARBK"
    "Gs3H3dmHt96xjvCbp0iCY6AikkX49Ael59mhBHR+0C0uionSmMZNcS/SpfsZZ2jRhqKP3X"
    "plsrIoLOfG/wdiz1SJpJPe3Mt6oFWQdJOl5MEJ25LiL2K0qcCXBoH9AeYGhMLSgJhBwhNr"
    "Axl8PzpuiBNuhOgLgAm4Auo0PEgEfBEFtDoePGQrAgLiUKX5RQZV5ozW7AOe6/FE/g363W"
    "wcFxa+/g6OSwfXx8eLI3dQkWu/J8g/P3v0n3IPGhLfcX/DT4s6WZn4p+HWTZulTHDFobjb"
    "GlpStmHCsBHM7eauJ70CqA70ErE1/ZlcR3KJ5Ly+gJ6Ws4efePinhhR9lO2NE8uIH2Ki6V"
    "A/rlUnkboN2YYK6I2fNGiZ1boeJJmuET7841fQLxJYwAQVnU+CEAWpawJIDiAj3KACXCZ1"
    "JDSRNF/vI5Yr8CZbgIHwp8/v3sVevwCGAOuEcZslNsnfWNa0ybCn9B22PabL9T/IyWTeVU"
    "RMmmjetAT4iskQ7EcZ7NgdxobCnESi90BpAPdEBOcpn42VJRYTEkoejAlHB+nipM8hm7Ul"
    "Mrzl4AenAxQ1z7BST5VnoBy/3RuholM/hlhG24wvxP8pUE/0uY/sSitrwtDSEf59mgJv3O"
    "g0X48sX8SQEpf5Ip5E/mZbwDudcRvpT+LJ/nNPN8C8MHX7jyihfiBqq9mRcwkP53sUBBKQ"
    "lIz+kg1tDoy/bE1V8NpCP62rkx+60ioldQZUdqWwviN1y0S4s1UeogSDJc8hjbHNBdwVcW"
    "0tOWzWbLnF9ff5QjT7Nlzt/PydSrL5fnbwX4CnpBhL0Mk8K4NC9X111QIlN2YAjUgs5L9O"
    "fqPitGWTBYfk0QiLOdgrs7+/QnfDz92X28uwM7+6f7u4Ay0dw//dnHtmh8LX4oK4ujH4IE"
    "c5WSJH6IkXziIbYYOy/vMmsOpWcrkJpq6v12oWzLdk62ZXtvmbI2y6ql+knim1jBRwq5Nq"
    "c09rZeYywgP+L9jp4YmWOrX1JGq0jeQCs7b6C1kDegINNNHogxmRm+2gw3RukzvwDj45bp"
    "49J7EgSTisI7Zaif0F7/It0IEXlLHeg4OhjPsdUP6TXbfzG8OgxZmluc0rmftNupYuBXbL"
    "NT/MWNumGkek6zhozvPtwgZ+r0z72TMDRwqQbZQn36GM3EqDWcOY9lBlpCtFJCLDMcs4Mr"
    "sRdWIAdR5QH+wkHINcCu2gyhtkBwT7wogInKF4xHRVJyDlcfJyUw8lVFiFSn8D7+NimH1T"
    "H6TMrh5k0U+RHpx07iXMazXM2x+U4xQStgn+Qz6K8YuUK9VWKGMS6TU7Fy7hZ1tFz6iH6D"
    "Lv1oagxtnzfke9pr1lMes2CtsWDtYkK0oZ4xGax1kgOE0a65yhBjqeEa2trWLBc89yToi4"
    "i/owzhPvmAJgr39+ImIUndhJKxeL9luGf56aKZwfuprxifbwID8eQomMwXZ58vzt68bTw+"
    "T2rFZRDfaqS6/GR5QkUYHyvs9AeqE4RsSFU7gOIn5+L+0rz7fIZv5Bs5nwDh0jVlbgTkyt"
    "OnPfAf6Di/8FOVEMHoPQd3d4ncj7u7IEeCSx5JFFznFw58Iv2XbyR6MrBzdxfkV8AuHat6"
    "MkFwYQTZELHd1+BPhj0PERlnCEZS9yaGEmgQLgARwzSDDY89yuTIioCDe+wNoifjv4pRR+"
    "ICdtCcHIkhSzxQdtQi9GmjT1IaofPBi6+LvSaWUblYRrpQzVdjRofl67C4paDt1G3ck67J"
    "FK9qeG7rlxArkpN5GeimdMMh6FpiOARKsLjhoOibYZEAoU4tBFxhGSTC+kLN78iGpsyC3J"
    "U6m9iyjSMxAVgTWNhWrQyBYI6cppoc5VzqG5FKvYcZ90Afj4UB0Ifuqx5DwmJhgkfcQDPM"
    "4BQD2wDbaORSWWERyEEzaz7NafYm+NoIbkKZBE9dx3hx+Z7rSs8ySt4o+Rej5GcCp+iknn"
    "HUcFqXsKVfM7xlrKjC0Cp0NLCN6GsIbgklzdBDSsLVrWjNADekr0NeWw6Wt2//uk0EvxdS"
    "q0aTsOfj9dVvEfl8vtXcnkQY1GEumtwW0Zt0Nr10tpT0wpQ0taVJhWmp9wZ7DexNucSN11"
    "VxnZSS59kzfcpgpvnq01yBKDx+HRslzlOSKt1+Dz1WsMbGq+zjSbCZlJ9VxUoPO6ijeZhC"
    "nKd2E7wEH2fgj7q6GCeYDMhLQXYZGmN0r6MgYyxGRW7nCTqqyOoncXNI5rlklnKeUjQLVH"
    "N248RrLdM0zRUIi8OaPQ4VUolmj8PmhbYpq1xyzV9KHExSAM5NhJ0xmURYnaRjU8K69BLW"
    "Jui04SIblGidrBrRb0z5bVuJh4oYzlfUwz1sZVZ1S/TnGs0kRqlR1S3ONj2rRO4mBjsw2e"
    "lRIB5jojq5rLMmKRm9Bwhag5RjKdc+ujkOpdLCytjtm7fbu9TWWoqI6M1JxU9YijAFr15u"
    "Fda4Pr7wGaephUJSqArr7o6lGAqq8NsBArKGXVKZYhsMoJgRtlSrscPHdsSV8RgxjLjKyW"
    "WQyC04sOcJjYy9FCVewvgmHrdN39326PVapeOZgFzJEQxV+FNXfMSYTFWRrdPd4ZaczGPW"
    "E/25+jrcHKN32Hq0k2a6s+Y+a8ssvSfxbbPBBl7bZ/LyQEwcH4kW6AHXDw6Dm9u6U8p1vp"
    "EdubfHgVKVcwSZNQBq1orL7spNQdwfodfgjdrTHW4XClvNYaaV/0LztHw02fWUfZKrhipp"
    "/flXxq98ubrpkxCxf9BumlqKunI1khTRne+0qxH5lSzSf5N7kMCOFP3U97r0YfcUMCReT1"
    "SEQT7gK9rrAZ942JHkXhPYjLouCgpOYDKGDk45Cru0q6S6kB5k4mcocGLixziTlfnY8tRM"
    "4vVprCzG2cqSfXV9G0bJb1zJu3DiUJiCck565IzFxO2fELeHwgsauWmpC5nSJc5SG4+/td"
    "8+bp8cHLWnEmXakidIUg6eQA+etrUaYzLieuV0EOMqVOBYJ8QY1drun+Sqw+7eOXV5eFhE"
    "Xx4eZitM2Vcpr+xWGZiNDMcs7G0u9c0CO7Wge/ancGqQ9JqU9yTzZqBKjDkFkIB3F5fCde"
    "pjOUiYOjNEpCm7zj5d8WgtLmoF96g7oHQIvtx8XHTRSr1S3kpfPOFSDWD8tCpJum1Z9KtT"
    "Ms/25C1vDOQ1F/4OBI0GvFOGGmJ7uF9kUVVQZeKr+oxh+uziuiLW0g0K1hHTbKVpX66lxE"
    "KqYmaS5pa/ZLAq1EtoRL9jY3pUZy7nmR5VDlLWqRBEtUy8WuV1BfJGA9wpQw3hNfvStlJE"
    "V8TcOHeoNUyzNYKOXEOjK0lKsTJCYagugMzic4WmbZ5lYTReeVuUwi9BA94YS/3MtRLKGh"
    "ml92KU3idGZdGvNLUXdeUqPjcgKkH1FVV0zylqK1Rgf11iIFunqb8aSEf0tSt/sX6JC8cC"
    "dK2V3xlH7eAtJY4sDy33U/RaTin9KUftEC7lfAjftVeK1Cf5jBWxjVbEBSWeUPw3SMDPU3"
    "Mb5ihybQoroO2wgLhMt9pFosH41JWZz3n2h/Gpy8sUQHrHzET0xpsuYNtZFnL1zwePs5lq"
    "fRrV+tLPRslJyXjK2ShVtvJae0WsPEGVvZK3t2DlmdjQy7Hqvrhqm0iKNRf25FpxvqJ5xs"
    "CQZl32p1Rkr5i5tuHAEL0neubDlMHYD8vtBxN2W/dmgMQ+RayHbkRfQ7div5WnrWalUI9z"
    "SqEeL8Td8D9pVarzjg0NOYzNoOk5x0AfwNbhkVawc8pRw4ldwrmhlc5KrmtoKBYK4tr+dM"
    "RifGkNX7pPCdKe5DGmkk7vqucEf1av7/H/QeiGOQ=="
)
