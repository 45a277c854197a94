# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 20_20261207234015_erased_users.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "users" ADD "erased_at" BIGINT;
    """,
    "postgres": r"""
        ALTER TABLE "users" ADD "erased_at" BIGINT;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "users" DROP COLUMN "erased_at";
    """,
    "postgres": r"""
        ALTER TABLE "users" DROP COLUMN "erased_at";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1z27ay/isYfYlzRnFjxXZ83S/Hdpw2rWNnHOe2M/UZCSIhiTUFqARlRyc3//1iQf"
    "BNIilCFiWKwZfEAnZBcgnuGx4svrXGzCYu3z8jnmONWqfoW4viMRF/zPW0UQtPJnE7NPi4"
    "70pSHNP0ue9hyxetA+xyIppswi3PmfgOo6KVTl0XGpklCB06jJum1PlnSro+GxJ/RDzR8d"
    "d/RLNDbfKV8PDn5KE7cIhrp27VseHasr3rzyay7QP130tCuFq/azF3OqYx8WTmjxiNqB3q"
    "Q+uQUOJhn8DwvjeF24e7U88ZPlFwpzFJcIsJHpsM8NT1E4/b78ZtrW73+uau+/nyrtttaQ"
    "jIYhSEK26Vy6cfwi286hwcvj08eXN8eCJI5G1GLW+/B5eOBRMwSvFc37W+y37s44BCyjgW"
    "6iPxONzSgmQvRtjLFm2CZU6+4sbn5RtKs0jAYUMs4XhWbULEY/y16xI69OHT6BwdFQj0f8"
    "9uL349u90TVC/hkkx8BsHXca26OkEfSD2WMnxUGhJW5A2U7sHr1yWkK6hypSv70tIVV/RJ"
    "8GmnJfzb55vrbAknWOakbDuWj/4PuQ5f0BU7IO0C4YIwYOQx5/+4SZnufTz7c17cF1c351"
    "I4jPtDT44iBzgXogcFPXhIaBNo6GPr4Ql7dnehh3VYHu1i17gznm/BFA+lIOGJ4fmUyXrX"
    "/0AHLMuYqZ5CY+aMh+KtdsfEx6UsWut3MvvpEbtTIggsnyPcZ1MfCRuGQLf2MSfI8TlxB2"
    "gPGrk1ImOMlK58ud+ae33rGO8ZtvSBzHQUkiJfj0Larj1NqaPjwxLa6PgwVxlB1xL7Cq9Y"
    "y7qGDA3U/muzrTVRQWdTf3T5CHYky6WOOou9akHWJUDHyymis8mEUPsVo+4MuWyI2AB55J"
    "FZGAiEHqE2sh0Ow/O26ME26s+QuIA3Q32PPRAP+Qw9ONaDsHGPQrEQDhqFL2qoKi+05jDg"
    "3Bn+KJHA/3Q6b9687bx+c3xydPj27dHJ6ygkWOwqig3OP/wC4UHqQ1seL0yzxJ+vzaaZ0m"
    "+CLluX6YhFa5NHx9KyFTHHSgJWs7ee8n3TKSHfN51c+UJXWr4P4rm0nB5F38DJe3BcJgo7"
    "zg/CjueFG1iv8lo5oF+ulXdBtBtTzDVxe95JtXMnTDzNcnyS3YWuT6C+hBMgKMs6PxRhyx"
    "KeBJJcaMA8xKiImeRQ4KLArykn3s9IOi4ihkKffz171Tk6Rg5H3GcesTN8nfWNa1ybGn9B"
    "u+Pa7H5QvEXPpnYmomLXZuJiX6issY6IkzybE3KrtaMilnahO8J8pCPkNJfJny1VFZZHQB"
    "RdnJHOLzKFaT7jV2paxfgFkK8TxyNc+wWk+VZ6Acvj0aY6JbH4IcP2sML8T/NVJP4fYfpT"
    "i9lwWxpKPsmzQUv6Nw8W4atX8ycltPxJrpI/mdfxLuZ+V8RS+rN8ntPM8x1MH3zhMipeyB"
    "vI9nZRwgDi73KJgkoASNsMEBvo9OVH4vJ/DUmH9I0LYw46ZVSvoMrP1HYW1K9atMvKNTHm"
    "EkxzQvIE25yg+4KvKklHLZtFy5zf3FzByBFa5vzDnE69/vLx/FIIX4peEDl+jkthQpot+3"
    "R1W/hZUN3SsO2kKzcmnAsrz7sT4nUzloDeuwznTO9F1jl5D4B39/y5AgG/u/lyfnWJPt1e"
    "Xnz4/EHB8WZKwQSdaWVye3l2lSfx/tTjGRolV50sMjbIe34mPjoR/3l4lcAkxdYguf44Uc"
    "kFowCuxEpQC9FJqr9dFKVYCcqSy5o3lKAk2ynq9ezTb/j76bf+914P7R2cHrxEzBPNw9Nv"
    "Q8cWjfvih4yHOflHkDhcgkfFDzHSlPrEW1zlrO4ya170zLfNDY2pDg5L4eIPC3Dxh6+XhV"
    "V184O2uARXRUZLfBMrZLMU1+bc+9c7bzEWJD/mw66eGpljax58rlMG4dXJR3h1FhBeUmS6"
    "MK8Ek5nhq81wkz7Y8gsw2cgqs5HsiQa5j7LijRiap7TXD6cYEwq31MWuqyPjObbmSXrtab"
    "BIXl2PWJqbUbO5n7UvtWbC38S21BQeztHa0a7IzTRfMs19P0OL5EP8/SzlscvZsGdlGTXy"
    "XEnFMu6rNe85z08xvv/9lrhRUmpO1ip19VEOsoP+3vdwSoWtamZ8rzIRqKSVkQKM5Zif/E"
    "u8sBK7GeSOghccKa6RM5HbKuVmSu6LF4UcKnceJLN2GbsXVh8nI3H3l8xgyk4RHf/HbF6o"
    "T1BiNi9s3oWGj0g/t5fkMpmP1QLvv5lDyQqyT/MZ6a+YWSWDVXLaCa4GeX6bRoEzVyvlFN"
    "JvMOU0jpyhnQtjxlNfG/0W8Rjomwb0TQTWVFvUMZORtQ7MUDjtmqtgCZYGrvGubU19IXJP"
    "C31R4u+ZR5wh/Z3MpNw/iJvENHM7aw64ZMfknheni2YPP0WxYnK+CRmIJyfBZL44+3xx9u"
    "6y9X070J+PQf61lRny0+WAH5W/LR30B6YTKTYi6yZhpPB5WdF9McM9vafnMyRCujZgdzCX"
    "kT4boH9j133BTyVgx2NPHPV6KWxSrxdgeDjwAFFwnRccTSnEL/c0fDK01+sF+B/cZ4+yMl"
    "2QXBhj74F4L/fRH57j+4RCniEYSd6bGEpIg3IhEDFMOyidMGAejBygEdGT44/CJ+M/i1HH"
    "4gJ20JweySOWeKD8rIWKacNPEpzQ+eTFX4u9JpdRu1xGtlItNmPGhhXbsKSnoB3UbTySbs"
    "gUr2t6bueXuGuCGf4Y2KZsxyHoWuI4BEawvOMg6duq3JAwpxZBE+EZpNL6wszvQUMbULov"
    "wWZTG9o4ERPAayPLsWWrR1AwR04zXY5qLnVPwagPHI/7aOg8CgdgiCevBh4RHosneMQNtB"
    "XCWAxsI8cm4wmDWs0IBs2tHjln2dvor1ZwE9IlyFjH+NaKX3KyeAGQiZ+eqlYZzoHYM/ja"
    "jXZSpGsehJ9pS44gXib8QH/8enl7iWJK9OEzEp8Vuv5ydRU4vAYVXTWI0bgaxtX4YVyNWO"
    "2VndQxRwOndQUlijSTbMaXKy1aKR0N2Yb0DRRuBSVahVOyKNw70ZojXEXfBFhcgSzvLv+8"
    "S6XgFwCI0Rbdq5vrX0LyeVTiXI0FHJwrURYCGtIb0OfqoM9kGlYTepu1QcXIXkP2pvzzxu"
    "vETdyMI1zyZ3rEYKb56tNcCrHrMx0fJclTkSnd/Qg9UYDBdlbZ7ZZiM8CjVdXKwHFJV/Nw"
    "qCRP4yZ4BTHOaDru68o4xWSEvFTIE488OuRJx0AmWIyJXN1EDpgHCytZqK982aeYjPSf4Y"
    "ePAJahp1lCjibE+VV7J752Qts3YOhn+iS1rkjeUPnXa4H9vSPvLW+RXXa3Syy0d8FVLX/S"
    "0HTiMmxLpJ0nbi9cE0ceGRAPTgpCe46PxniGRsy1EYezD7GLsO9jawSZJf5zDNNTZwi15l"
    "50Vde5p3E37A4E8F/oqPd6P/V6kUfZ6wF8b8TkBWz2ROFm2nIl/2kk19fF4AH2DrkEw5K9"
    "aLyn6q4BKihuk1CL2OoYSNHNicIUzqImFHyZHO1x4sHpLvyncCH9J2X/+f5k9uyjbQ12b5"
    "vYvfBL01sjS3M1b1fi+h2RbR7gXCfJNgpP9snJBKF/cpYA0CdOefB5sLsmaS3w0t3lS3kA"
    "gr6o1eG2hEbfRzdPCrSeAHQjRd+OwedBuzB1keE7RfieKtszpTBeCDAPGl9wJAxWEmO+j8"
    "6EqRRREpStdMaOz/dhvgBrr7cAYGvf0ycFXJ8CBkLZqZhAXMBl1kNJmxSD0MRUNejyeloo"
    "A/mqFvJVHw+ggUhGg6zbYiIiMIPdvpbnlWJqoA6pYIHEYAl+mATPZ2tE7KlL7M+Epp2kTI"
    "JCL5iHpF25U6CsQwzEkGPpk3CvA6Q+xOiO8ALhF7iS2Ify6IsubnTNKHMx5zqvcXRwsnU9"
    "6T6xmPh5mrEpw+FqTwYSziyka+6p8K17vfDqvV6QBIIR1f3OgAkHz6Q2aIr7t2DjKWdwue"
    "gk7GC/yNOIQa7qnip+4b37sGdElqTq9U6FP05tueODB3+gPcvFzjjc4RpddoI5fymp/LZ4"
    "k44LuSYL9lS7bv6x28u2gIh+uBE5Ufz5PSOpLrNNY7vbNAym3WDad1a0Jt6sNN7UXRY09d"
    "CfGQYJj0L4c1r4jgTLs9AddXsBm4Z3qJr+ehM+wWRm/erb6kJ/sLQHEjJssCib8qdbm9Hm"
    "a9+htLXUYd1wHlVjrD2PZXjT+fo7YjDYvNWVt80o0QYxJZgMgsmg2msb5RhUe7OhCXcBTD"
    "gjQ3sXAYjzU7MByLh0SjYgf8HDIyZ5W5a089iTXMH3GPOjJKfMQ2IfoGncD8hgw1VWLnYd"
    "w2YjHdTzLQU7/IxCuIEcn2BrFIzbDvAHQXWcDABCO8Y9COp0WT1I7kKzAznb8IBOOHgNAf"
    "YYjUTgBQnZqX9P9xSdrMhDp1DtT3Qd7O8HNyRooBwPpFrVoZ//EiMGw/mE+0oG6E60BI8s"
    "Tb+E+HF57zyoNNhGlDxFDEG5n3Z0CSl+yPZiKr558Yc2vCI8Vi4/MQsvU9OPTLCYFK12it"
    "akuapNc8nZqX8MQYLLBP8rO5BKbWrKPmYyol9Z9FLVr3C4a2NXKCo62XVHTi9u5vzeiWN1"
    "GyH6WoVTt4Uh1W3JsKqrFVtFNb4T9bvD08GC8U4h7pEQ6mR0tBcwthWRCBHCUAaKemdEW9"
    "Vc6J5GkZUaHgDgsJ0JiPfhHxGyME9FHnsUACgQjXE2JnAZIUMoJg74gNytRlEt8TAkMIeg"
    "1eYDLopBTJXl6k5Bq0E8XSsRr98NMxF0xRE02Er9DfwpNuNt7bK3BRXQCtwtVSCthL8VBf"
    "Za2WyV6R0I72SChzIBGqZRwS+C8udob+QAgnYWJIhDv6bXe3m6zN+q4jL3dKBcKfG8EuSL"
    "0cQVEylKbFvCfeOIMum+AVxY/CmnNSLU92b5HlbCOkQV2xNtftbxLcbtqqXbZXwDs9urKb"
    "N8a6V+jNCl0a3N5tFti78ChVITb+wdgaXwTx7hUDQmyyGboyj0yWxJ250kiZc5ZflvoSgZ"
    "FFzJOCV10hy7kgvadRRSCscYfAcawo05Gqib33RKCPhNJ1fA0JUWsIi8HJoh4MJTk2Mmc2"
    "qyzgnVLvZFjDvWmc5Jng2C+1s7Op3Nfv6Nb9CiVDORTDdq/DY0lQ86J2WyyJ2T/Cwy9NXG"
    "cb5mvjNwLJx3WHWqv9BppgnKknnMG0pQkk3mF2FBdcohn4jTnT6Uk6Qz2ckBkxqu8ALkNa"
    "NQwtpHNwUka62sjN++eb+9z2ytE2NCerNj9/k7drX3faX5jDO0i8uOSXt8MfU485ZZbUVV"
    "2nZ3LclQ0oTfhftCUsbUscMtIsKsgiENonW0p6rvhNtFPEyH8OfABxyXn2HEKxjf5ON26b"
    "vbHbveKGyWSchVnMHI3YOwFKNdVoesS8ivd16H1MR2q6MlLh8J9bOsdqq/0F6Hi5MESMtX"
    "JQzK6CnmGAOttoGq9sX616dBvb6pB5dHYuJMSVClbzLlowWLXdF17ukeQIFg06iHOMGeNQ"
    "pAQeKyL2F7K5+OyT56R1zih7UCVWtuMT9j5evyhRZZebN+vymwsIkrf1jb9Emo2N9YP8ss"
    "hV2FFglUdPdv1tfI/AILxG+y9OseqH429fvs68tT5BHxeogqCAsP+IoNBgh2+LuqYKvtsc"
    "kEKrYy2AD0iF3Hzs4AV3KVzBDSx574qRROQv2YYLI2H1uRmUm9Po2VxSRbVbqvqW/DGPmN"
    "G/kJnsEZazpJ+wSLyds/I2+PRRQ0nmRBFwoKy8YsjYn4OweHbw9P3hwfRholailSJItKg5"
    "Kvvra3mmAy6nplOIgJFWpQ4iGn5uaSKiZ5hTfXVR1vm+by6KiMvTw6yjeY0GfOCt72VK9R"
    "VHwnHfxWTmCsettLY+MgTigZHv8hj08RUauMXgG3hCUw6RRhit5ffBSh69CBQRR06YFQOF"
    "gFnX265uFaaNiKnkh/xNgD+nJ7tRgiV3qlopXWJOBVDmDi5Pp8fu2dWXRtEphqd3DjGxNy"
    "GbBtPtT2ZAE2LhWNhngjhgbK9uigzKK2oMqVr+wzgcHW1XVNvKVbEqzjZvlKUV+hp+Qpqn"
    "JuUv6byHQ80slCZZfImP3tGNejPnO5yPWoc5J49+sw19XFaxSuLtA3GsKNGBooXrMvcCdV"
    "dE3cjXM4xCDL1wg6Ch2NPpBU4mUoZSgvQMzif42mbZFnYSxedVvE1JegId4ES/PcNXO4/U"
    "5qj5oYvU8eg1PEssxe2FVo+CYBUQWmr6yh26aqrdHpOetSA/k2Tf6vIemQvnHlR9avcfGj"
    "ELrWynvM0TjxVpJHhpNupxl2rfhs3GmWZdt9CVdSuno6sVfK1Kf5jBexi17EBaO+MPy3RI"
    "ifZ2Ib5igKfQoroO16AXGVYfWEiAYTU9dmPhf5Hyamrg4pAJ+BhmxDehNNl/DtLItM/KyE"
    "RWGtxCSbqZaoUS3RJ18zPJACSIaib5yX13ldxssTVPkrea8XvDyTG/pxvLovE7lNJ8ObUz"
    "2FXtxU0mwxMaR50Ptzjnivmbu24cQQe6J67kPEYPyH5f6DSbtVuRlj7OhJN6RvYFhx0Cmy"
    "VnEp2rcFpWjfLuTdnP9mVQkvOhVGcRifQTNyTgh9hDtHx1rJzoijgRN7/Tq53qjkpqaGEq"
    "kgrh1PhywmltaIpYeMEu1JnmCqaJNiMyd4TaK+s6nt+JdwMGIrI/JL9LaLoj8MdF2XDbcX"
    "/5ls/VbL39QqUdRU+SfTzL7e3v2IoYEe30mZzOdJfuLzZCHvGe820pCv4jBZjhKYw2jfe+"
    "m8fcTRvExHFZl7m/jYcRclfEe+5qjkmGODEv72vSoZF4j07vLPu5TLvFCeaTxTPVc317+E"
    "5PM1m+aicDb19EpexxyNm9Lr1xh5iK78xFIeoGuXa6c8q/bVViOO7/8PkvBsgg=="
)
