# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 18_20261207230143_add_user_kind_bots.

Bots (issue 29, docs/bots.md): a user's kind ("user" or "bot"; every existing user is a user)
and a bot's own message bucket (NULL: the default limits).

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "users" ADD "kind" VARCHAR(8) NOT NULL DEFAULT 'user';
        ALTER TABLE "users" ADD "messages_per_s" REAL;
        ALTER TABLE "users" ADD "messages_burst" INT;
        CREATE INDEX "idx_users_kind_bb0376" ON "users" ("kind");
    """,
    "postgres": r"""
        ALTER TABLE "users" ADD "kind" VARCHAR(8) NOT NULL DEFAULT 'user';
        ALTER TABLE "users" ALTER COLUMN "kind" DROP DEFAULT;
        ALTER TABLE "users" ADD "messages_per_s" DOUBLE PRECISION;
        ALTER TABLE "users" ADD "messages_burst" INT;
        CREATE INDEX IF NOT EXISTS "idx_users_kind_bb0376" ON "users" ("kind");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_users_kind_bb0376";
        ALTER TABLE "users" DROP COLUMN "messages_per_s";
        ALTER TABLE "users" DROP COLUMN "messages_burst";
        ALTER TABLE "users" DROP COLUMN "kind";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_users_kind_bb0376";
        ALTER TABLE "users" DROP COLUMN "kind";
        ALTER TABLE "users" DROP COLUMN "messages_per_s";
        ALTER TABLE "users" DROP COLUMN "messages_burst";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXV1z27iS/SsovcTeUjy2Yjtez8vajnMndxI75Tg7t2p8S4JISOKYAjQEZUc3m/++aB"
    "D8kkiKkEWJYvCSWAAaJJtg9+nGAfC9NWY2cfnBBfEca9Q6R99bFI+J+GOupo1aeDKJy6HA"
    "x31XNsVxmz73PWz5onSAXU5EkU245TkT32FUlNKp60Ihs0RDhw7joil1/p6Srs+GxB8RT1"
    "T8+W9R7FCbfCM8/Dl57A4c4tqpW3VsuLYs7/qziSz7QP33siFcrd+1mDsd07jxZOaPGI1a"
    "O9SH0iGhxMM+ge59bwq3D3ennjN8ouBO4ybBLSZkbDLAU9dPPG6/G5e1ut2b2/vul+v7br"
    "eloSCLUVCuuFUun34It/C6c3T89vjszenxmWgibzMqefsjuHSsmEBQqufmvvVD1mMfBy2k"
    "jmOlPhGPwy0taPZqhL1s1SZE5vQrbnxev6E2ixQcFsQajkfVJlQ8xt+6LqFDHz6NzslJgU"
    "L/9+Lu6reLuz3Rah8uycRnEHwdN6qqE9SB1mMtw0eloWHVvIHaPTo8LKFd0SpXu7IurV1x"
    "RZ8En3Zaw//8cnuTreGEyJyWbcfy0f8h1+ELtmIHtF2gXFAG9Dzm/G83qdO9Txf/mlf31c"
    "fbS6kcxv2hJ3uRHVwK1YOBHjwmrAkU9LH1+Iw9u7tQwzosr+1i1bgzni/BFA+lIuGJ4fmU"
    "y3rX/0AHLMuZqZpCZ+aMh+KtdsfEx6U8Wut3MvvlCbtTIhpYPke4z6Y+Ej4MgW3tY06Q43"
    "PiDtAeFHJrRMYYKVu5f9Cae33r6O8FvvSRzHQMkmq+HoO0XX+aMkenxyWs0elxrjGCqiX+"
    "FV6xlncNBRpo/dfmW2tigi6m/uj6CfxIFqSOKotRtWjWJdCOlzNEF5MJofZrRt0ZctkQsQ"
    "HyyBOzMDQQdoTayHY4dM/bogbbqD9D4gLeDPU99kg85DP06FiPwsc9CcNCOFgUvmihqrzQ"
    "msOAS2f4s0QC/93pvHnztnP45vTs5Pjt25OzwygkWKwqig0uP/wDwoPUh7Y8XphmqT/fmk"
    "0ztd8EW7Yu1xGr1iZPjqXlK2KJlRSsRm899fumU0K/bzq5+oWqtH4fxXNpgR7VvoGD9+i0"
    "TBR2mh+Enc4rN/Be5a1y0H65Vd4F1W7MMNcE9ryTZudeuHiaBXyS1YXQJzBfAgSIlmXBD0"
    "XYsgSSQFIKDZiHGBUxk+wKIAr8mnLi/YokcBExFPry28XrzskpcjjiPvOInYF11tevgTY1"
    "/oJ2B9rsflC8RWRTOxdRMbSZuNgXJmuso+KkzOaU3GrtqIqlX+iOMB/pKDktZfJnS02F5R"
    "FQRRdnpPOLXGFazuBKTa8YvwDybeJ4hGu/gLTcSi9geTzaVFASqx8ybI8rjP+0XEXq/xmG"
    "P7WYDbelYeSTMhv0pH/xYBK+ejN/VsLKn+Ua+bN5G+9i7ndFLKU/yuclzTjfwfTBVy6j4o"
    "W8gSxvFyUMIP4ulyiohIC0zQCxgaAvPxKX/2toOmzfuDDmqFPG9IpW+ZnazoL5VZN2Wbkm"
    "xlyCaU5InhCbU3RfyFWl6ahks2yZy9vbj9BzxJa5/DBnU2++frq8FsqXqheNHD8HUpiQZs"
    "uYrm4TPwumWzq2nYRyY8K58PK8OyFeN2MK6L3LcM7wXhSd0/cAZHcPzxUo+N3t18uP1+jz"
    "3fXVhy8fFB1vpgxMUJk2JnfXFx/zNN6fejzDouSak0XBBqHnF/Gja4KLrxgFeh9WKljAx6"
    "n6QpxsJVqWnFi7pQQlxc5Rr2eff8c/zr/3f/R6aO/o/GgfMU8UD8+/Dx1bFB6IHzIi4+Rv"
    "0cThkr4ofoieptQn3uI8W3WXWfO0W753aCiqPzouxcw+LmBmHx8uA/Z188RbnASqIqcivo"
    "kV8ilKanMA87BR6FLqcMyHXT0zMifWPAJXpwzHqJPPMeoscIykynSJRgkhM8JXG+EmgN3y"
    "CzD5sCrzYeyZBtF3WfVGAs0z2uuf0B8TCrfUxa6ro+M5seZpeu2JmEhfXY9Ymsshs6VftD"
    "KyZsrfxMLIFCPL0VpTrZqbYb5kmPt+hhXJJ5n7WcbD5LmW57mShmXcV7Ouc8hPCb7//Y64"
    "UVJqTtcqdfVJdrKDeO9HOKTCUjUyflSZCFTaykgBxnrMT/4lXlgJPr3ktL/iSEmNnIlc2C"
    "eX83FfvCjkUMl9T2btMvjzq/eTkbj7U2YwZaWIjv9t6PP1CUoMfX7zEBo+Iv3cXlLKZD5W"
    "C7z/Yg4lK+g+LWe0v2JmlQxWyWknpBqE/DbNQ2auVsopbL/BlNM4AkM7F8aMp742/yqSMe"
    "QrDfKVCKyptqpjIaNrHaKbAO2as2AJkQbO8a5tTn0hck8rfVHj75lHnCH9ncyk3j+Im8Q0"
    "c0FlDrlkx/SeF6eLYg8/R7FicrwJHYgnJ8Fgvrr4cnXx7rr1YzvUn09B/rWVGfLT5YQflb"
    "8tHfQHrhMpMSJ37sFIMcSyovtigQf6QC9nSIR0beDuYC4jfTZA/4Nd9xU/l4Qdjz1z1Oul"
    "uEm9XsDh4SADjYLrvOJoSiF+eaDhk6G9Xi/g/+A+e5J7owXJhTH2Hom3f4D+8BzfJxTyDE"
    "FP8t5EV0IblAuFiG7aweL9AfOg54APh54dfxQ+Gf9V9DoWF7CD4nRPHrHEA+VnLVRMG36S"
    "AELnkxd/LtaaXEbtchnZRrXYjRkfVuzDkkhBO6jbeCTdkCFe1/Tczk9x14Qz/CnwTdnAIa"
    "haAhwCJ1geOMj2bbXhjXCnFkETgQxSaX3h5vegoA0s3X3w2dSGMk7EAPDayHJsWeoRFIyR"
    "80zIUc2lHig49YHjcR8NnScBAIZ48nrgEYFYPCEjbqCtGMaiYxs5NhlPGOwWjKDT3P0L5z"
    "x7G/3ZCm5CQoKMeYzvrfglJ5fPQzPx01P7JYZjIEYG37oRlz+96j78TFuyB/Ey4Qf647fr"
    "u2sUt0QfviDxWaGbrx8/BoDXsKKrJjEaqGGgxk8DNWKzV3ZQxxINHNYVbJKjmWQzWK60aq"
    "V2NHQbtm+gcivYJFSAkkXl3ovSHOWq9k2gxRXo8v76X/epFPwCATFaJPrx9uYfYfN5VuLc"
    "Kn8cnGxQlgIatjekz9VJn8k0rCb1NmuBitG9hu7NBsQb36ls4mYcIpI/0iMBM8xXH+ZSiV"
    "2f6WCUpExFrnT3I/TEFnC2s8pqt5SYIR6talYGjku6mscTJWUaN8AriHFG03FfV8cpIaPk"
    "pUqeeOTJIc86DjIhYlzk6i5ywDyYWMlifeXrPiVktP8CHD4CWoaeZQklmhDnV41OfO2Etm"
    "/I0C/EJLXeE7uh+q/XBPt7R95b3iS7rG6XmGjvAlQtf9bNdOIybEumnSduL5wTRx4ZEA/O"
    "qkF7jo/GeIZGzLURh9P3sIuw72NrBJkl/mtM01On2LTmXnRV13mgcTWsDgTyXwjUe71fer"
    "0IUfZ6QN8bMXkBmz1TuJm2nMl/Hsn5ddF5wL1DLsEwZS8KH6i6a6AKitsk1CK2OohQVHOi"
    "OIWzqAgFXyZHe5x4cL4I/yWcSP9F+X9+MJm9+HBVw93bJncv/NL05sjSUs1blbh+ILLNI4"
    "TrpNlG8ck+O5kk9M/OEgL6xClPPg9W1yS9BV66unypDFDQF6063Jaw6Afo9lmR1hOEbqTa"
    "t2PyeVAuXF3k+M4RfqDK90wp9BcSzIPCVxwJh5XkmB+gC+EqRZQE21Y6Y8fnBzBeQLTXWy"
    "CwtR/osyKuT4EDofxU3EBcwGXWY0mfFJPQxFA17PJ6eihD+aqW8lUfBNBAJqNh1m0xERG4"
    "wW5fC3mlhBpoQyqYIDFcgp8mwfPFGhF76hL7C6FpkJTZoBAF87BpV64UKAuIoTHkWPokXO"
    "sAqQ/RuyNQIPwCKIl92B59EeJG14wyF3PQeY29A8jWRdJ9YjHx8zxjUYbD1ZoMJMAspGse"
    "qMDWvV549V4vSAJBj+p+ZyCEg2dSCzTF/Vuw8JQzuFx0FnOwXuR5xCBX9UCVvEDvPqwZkV"
    "tS9XrnAo9TW6744MEfaM9ysTMOV7hGl51gzvdlK78t3qTjQq7JgjXVrpt/8POyJSCiHm5E"
    "DhR/fs1Iqsos09juMg3DaTec9p1VrYk3K403dacFzX7oLwyDBKIQeE6L35EQeRG7o24vYN"
    "P0DrWnv96ATwiZUb/6sroQD5ZGIKHABjdlU3i6tRlrvvYVSltLHdaN51E1x9rzWAaazrff"
    "kYDh5q1uvG1GiTaJKSFkGEyG1V7bKMew2ptNTbgPaMIZGdr7iECcn5oNSMalU7JB81c8PG"
    "KSt+WWdh57ljP4HmN+lOSUeUjsAzWN+0EzWHCVlYtdR7fZTAf1fEvJDr+ikG4g+yfYGgX9"
    "tgP+QbA7TgYBoR3zHkTr9LZ6kNyFYgdytuEBnXDwGgLuMRqJwAsSslP/ge6pdnJHHjqF3f"
    "5E1dHBQXBDog1sxwOpVnXo53+JHoPufMJ9pQN0L0qCR5auX1L8uLx3Huw02EaUPEcCwXY/"
    "7egSUv2Q7cVUfPPiD216RXisXH5iFl6mJo5MiJgUrXaK1qS5qk1zydGpfwxBQsoE/ysDSG"
    "U2NXUfCxnVr6x6aepXONy1sTMUFZ3suiOnFzdzfO/EsbqNUH2twqm7wpDqrmRY1dWKraI9"
    "vhP7d4engwX9nUPcIynUyehoLxBsq0YiRAhDGdjUOyPaquZCDzSKrFT3QACH5UzQ+AD+ES"
    "EL81TksUeBgALRGGdjApcROoTNxIEfkLvUKNpLPAwJzCFotfmAi2IQs8tydaeg1SCerpWK"
    "1w/DTARdcQQNvlJ/AX9KzKCtXUZbsANaAdxSG6SVwFtRYK+VzVaZ3oFAJxM8lAnQMI0KuA"
    "i2P0d7IwcYtLMgQRziml5v/3wZ3qriMg90oKCUeF5J8sVo4oqBFCW2LQHfOKJMwjegC4s/"
    "5bBGhPreLB9hJbxDtGN7oszPOr7FwK5awi6DDcxqr6aM8q1t9WOULp1ubRaPblv9FRiUmq"
    "CxdwSmwj97hMOmMVmAbK5FISazZdvuJNl4GSjLfwtFyaDgSgaU1Mly7EouaNdZSCkeY/Ad"
    "aCg3lmigbX7TKaHgN51cBUNVWsEi8nJohoILT02OhcypyTonVLvYFzHuWGc4J2U2SO5v7e"
    "hwNuv5N75Ai1LNRDLdqPPb0FA+6pyVySJ3zvKzyFBXG+B8w3xn4Fg477DqVH0haKaJliXz"
    "mLeUoKSYzC/ChOqUQz4Rpyt92E6SzmQlB05qOMMLlNeMjRLW3rvZQLLWxsrg9s3j9j6ztU"
    "6MCdubFbsvX7Grve4rLWfA0C5OOyb98dXU48xb5rVVq9K+u2tJgZIu/D5cF5Jypo4dLhER"
    "bhUcaRCtoz21+064XMTDdAh/DnzgcfkZTryC/k0+bpe+u93x643iZpmEXMUZjNw1CEs52m"
    "VtyLqUfLjzNqQmvlsdLXH9RKif5bVT9YX+OpycJNC0/K6EwTZ6SjjmQKtloKp8cf/r82C/"
    "vqkHl0di4ExJsEvfZMpHCx67ous80D2gAsGiUQ9xgj1rFJCCxGX3YXkrn47JAXpHXOKHew"
    "Wq0tzN/IyXr8sXWuTlzfz9psjCJq78aX3TZ2Fi/8n6WW4prCr0SGCiu3+xvkbmF0QgfpNb"
    "v+6B6WdTv8++7Z8jj4jXQ9SGsPCAr9lggGCFv6s2bLU9NpnAjq0MFgA9YdexszPAlVwlM4"
    "T0sSd+KoOTMD8mmKzNx1bkZlKvT2NmMSlWle1r6tswTn7jTn6CZ3DGmk7SPiFi8vYvyNtj"
    "EQWNJ1nUhYKNZWORxkT8naPjt8dnb06PI4sSlRQZkkWjQck3XxutJoSMuV6ZDmJChRps8Z"
    "Cz5+aSXUzyNt5c1+5423SXJydl/OXJSb7DhDpzVvC2h3qNouJ7CfBbOYGxqm0vjY2DOKFk"
    "ePyHPD5FRK0yegXeEpbEpHOEKXp/9UmErkMHOlHUpUdC4WAVdPH5hodzoWEpeib9EWOP6O"
    "vdx8UQudIrFc20JgmvsgMTJ9fn82vvzKRrk8hUu8Mb35iSy5Bt86m2Zwu0cWloNNQbCTRQ"
    "tydHZSa1Ratc/co6Exhs3VzXBC3dkWAeNwsrRXWFSMlTrcrBpPw3kQk80slC5ZfImP3lGO"
    "hRn7FcBD3qnCTe/X2Y6wrxGsWrC+yNhnIjgQaq16wL3EkTXRO4cQmHGGRhjaCiEGj0oUkl"
    "KEMZQ3kBYib/azRsi5CF8XjVLRFTX4KGehMizYNr5nD7nbQeNXF6nz0Gp4hlub2wqtDxTY"
    "JGFbi+so5um6a2RqfnrMsM5Ps0+b+GpsP2jdt+ZP0WFz8JpWvNvMcSjVNvJXlkOOl2muHX"
    "is/GnWZ5tt3XcCVbV08n9kqZ+rScQRG7iCKuGPWF478jQv08k9sw16IQU1hB264XNK4yrJ"
    "4QUWBi6tqM5yL8YWLq6pgC8Blo6DZsb6LpEtjOssjEz0pYFO6VmBQzuyVq7Jbok28ZCKSA"
    "kqHaNw7ldQ7LoDzRKn8m73AB5Znc0M+D6r5O5DKdDDSnagpR3FS22WJiSPOg95cc8V4zuL"
    "bhxBB7pnrwIRIw+GE5fjBptyoXY4wdPe2G7RsYVhx1irxVvBXt24KtaN8u5N2c/2TtEl50"
    "KoySMJhBM3JOKH2EOyenWsnOSKKBA3v9NrnerOSmpoYSqSCuHU+HIiaW1oilh4wS7UGeEK"
    "pokWIzB/hWo74f/w8HSw4J"
)
