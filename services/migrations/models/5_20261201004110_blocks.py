# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 5_20261201004110_blocks.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Blocking (issue 15): who blocked whom, owned by the block service.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "blocks" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        "blocked" VARCHAR(64) NOT NULL,
        "ts" BIGINT NOT NULL,
        CONSTRAINT "uid_blocks_uid_c460f8" UNIQUE ("uid", "blocked")
        );
        CREATE INDEX IF NOT EXISTS "idx_blocks_blocked_134f65" ON "blocks" ("blocked");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "blocks" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "uid" VARCHAR(64) NOT NULL,
        "blocked" VARCHAR(64) NOT NULL,
        "ts" BIGINT NOT NULL,
        CONSTRAINT "uid_blocks_uid_c460f8" UNIQUE ("uid", "blocked")
        );
        CREATE INDEX IF NOT EXISTS "idx_blocks_blocked_134f65" ON "blocks" ("blocked");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "blocks";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "blocks";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVtz27YS/isYvdSeUXJsWb4c98l2kjZNbGcS57QzaUeGSEhCRAEMANrWpP7vBwDvEk"
    "mTiihTDJ4SA7sg9RHc3Q+7AL93ZtRGDn95hhi2Jp1T8L1D4AzJ/yz0dEEHum7crhoEHDpa"
    "FMYyQy4YtIRsHUGHI9lkI24x7ApMiWwlnuOoRmpJQUzGcZNH8DcPDQQdIzFBTHZ8+Uc2Y2"
    "KjB8TDP93pYISRY6duFdvq2rp9IOaubntLxBstqK42HFjU8WYkFnbnYkJJJI2JUK1jRBCD"
    "AqnhBfPU7au7C35n+Iv8O41F/FtM6NhoBD1HJH7ucBC3dQaDq+ubwafXN4NBpwJAFiUKXH"
    "mrXP/6sbqFF739/nH/5OCofyJF9G1GLceP/qVjYHxFDc/VTedR90MBfQmNcQzqHWJc3dIS"
    "shcTyLKhTags4CtvfBHfEM0igMOGGOF4Vm0C4hl8GDiIjIV6NXqHhwWA/u/s48XvZx93pN"
    "SuuiSVr4H/dlwFXT2/T6Eeo6xeqgoIB+ItRHd/b68EulIqF13dl0ZXXlEg/9VOI/zHp+ur"
    "bIQTKgso29gS4F/gYL5kK7YA7QJwFRhq5Bnn35wkpjuXZ38twn3x/vpcg0O5GDM9ih7gXE"
    "KvDPRomrAmqmEIrek9ZPZgqYf2aJ7sctesN1tsgQSONZDqF6vfF7isV8O3ZESznFnQU+jM"
    "8Gwsn+pghgQs5dE679D8P3fQ8ZAUsAQHcEg9AaQPA8q2DiFHAAuOnBHYUY3cmqAZBIGt3H"
    "3ZWXh86xjvB3zpFM2rGKRAfD0G6Xn9acocHfVLWKOjfq4xUl1P+Ff1iCt511ChhdZ/bb61"
    "ISbozBOT13fKj2SF1FFncVQtxQZIyfFyhujMdRGxX1DizIFDx4COAEN31IJKQNoRYgMbcz"
    "U878oeaIPhHMgLsDkYMjpFDAgKptiaSh93Jw0L4sqi8GULVeeF1kwDzvH4Z2EC/+31Dg6O"
    "e3sHRyeH/ePjw5O9iBIsdxVxg/O3vyl6kHrRnuYLXhb8+dbMy0S/DbZsXa4jhtZGd9iq5C"
    "tijZUADmZvM/E96JXA96CXi6/qSuM7lb+rUtATyLdw8u4flWFhR/kk7GgRXN97lbfKvvzT"
    "VnkboN2YYW5I2PNKm50b6eJJVuCT7C4MfXzzJYMAKVk2+CEAWpaMJIDWAiPKACWSM+mhVI"
    "ii/vI4Yr8CHbhIDgU+/X72ond4BDAHXFCG7IxYZ33jmtCmwW/Q9oQ220+KnzGyaZyLqDm0"
    "cR0opMmaVYE4qbM5kDudLYVY+4XBBPJJFZDTWmb97ElTYTGkoBjAjOX8IleY1jNxZUWvGD"
    "8A9OBihnjlB5DWW+kBPM1H2xqUxPCrFbbpCvM/rVcT/C2d/g2hVZ+5ZgtLfEq3d4uIlOIl"
    "5QhULYUZzxk4t9AZ5jMU/W8FpEP51oV3+72TMgtYvZP8FSzVt8BS/GRGFgen1EGQ5FCVhN"
    "oC0EOpVxfSUctmqwjOr6/fq5GjKoLztws29erz5flrCb6GXgphkePqTKj38/q6C0pUKQMM"
    "gFryean+Qt9nJSRLLiJeEwSSaqfg9tY+/Q4fT78PH29vwc7+6f4uoEw2j0+/j7EtG1/KPx"
    "zIxYCjb1IEc12qIf+QI3lEILa8pljfZda8xJjvQFrqqff7parQ+gVVaP29p5y1STdFeJdx"
    "1vmueslRhy9INbeR1Nqc09jbeo+xhPyMjwfVzMiCWvuS1b0y+dRefj61t5RP1ZBVTaomlM"
    "wMX22Gm6D0mR+A4bh1clx6T/zFpLLwRgrtM9rrWa+pQKgSLAfNhsGS3YKJCRTfvPuInIj9"
    "LGAfcKRLPcgWGpbHcJKFrcFMeayTcQZoZXDNGMd8lpl4YCWKVHShyC8cBFoT7OpqWV0jy4"
    "V8UAATXVCSpIcZRSmrj5PBEL9oqqw7ZRj2j6lJaY73MzUpm7HV6UQbtKuTyKSWCbFXi/C+"
    "UkzQCtin9Qz6K1J4NFpl8SShZZLLKyf3qVOJ24TyG+Q2sygY2rplwZknKifvIh2TuauQuX"
    "MxIZWhjpUM1lWypDJor7jcmlBpYTJhbcmbJeaeBn0Z8TeUITwm79Bc4/5W3iQkmVXKOVnM"
    "LcM9j6fLZgbvI66YnG8SA/nLkT+ZL84+XZy9et15fJ4c8yXiHGo/n0H5/a5uMefXQqVJfy"
    "DfDTaDSGJuIeAilmbn4PZ2RzV0VVZ39/ZWM3rZxpF8yKwLLGzrVoaAPw9OM9YF6rrU30Sl"
    "m0eYcQHG+A5xMIbuixFDCFAmdeQNdIOMtBzYBthGM5eqkzSAGjR3b2+89qBiSPnUvnT8m1"
    "BN1o8uR/x0+et1pZvy1x2yDWCxyzH+ptjfJL16ZQK2cdbbOvIVG5yykzrWaOG0rmHrRsUo"
    "tbUR6vqh1ehUwDaUbyG4NWxdRw8Zyf4b2ZoDbiDfhoxoAZY3r/+6SXHYpfPCZvOg5/311W"
    "+h+OIhYgs11tA/byuNdf45baH8Dx3Stj2Yr+2MttS6mAzPw+LYsrgndQz2q2NvjsXY+P45"
    "18k42i5/pkcKZpqvPs01iJLxV0puJHRqcqXbz9AT+3JtvEpdYkrNZO62cKuMf5zOB/n2Ib"
    "XYnHvgTiTRLXHmjpsUXuum0S9hEUpwhIcpNGrMhO4WLPiZQiNz+M1GAF7/ySyUOJhkAFyY"
    "jY6VTDa6SubfHDRU+0FDhjJueMsPJZW+fxHKb8z5bduGk4YEzldU4BG2cveYp/oLg2aSkK"
    "ywxzypFp0oqUr6wQ5MdwoK5M+Y606udn0rSUbvAYLWJOPjAWsf3Rxa2WhjZeL2zcftQ2pX"
    "WkgM5c33ZH5gIdFsv/15F7qS/vjCY5xm7tbLkCrtuweWVijpwm8mCKgd9Wlnim0wgXJG2M"
    "qtJo6I3pFXxneIYcR1RR2DZKz+OxLSI2OR4cRrGN+sx23Te7c9fr1VxTRmQa7mFQx9DElV"
    "85FQMlv7ts53BwX1uR/DSvUX+uugtL3aJ7HCOvioLv6eYSEQUfvjVbl60P6LpL73skX6Ti"
    "4H1Gey6S/ueUxdHsiJ4yHZAgVwPf/I7oXC+1qu8zfZUZX5DlSunCPIrAnQs1ZedleV9HNv"
    "hl6CV3pjRVDsH7SaT040/g0t8vLhZK/m7NNaLXRJ66+eMLzy5/VNH6SJ/YMOs9xS2FXokZ"
    "SJHnylwworv0pF8Te1g8D/fiv1xJA+7J4ChuTjkVb8HosJUD/wBR2NgEcEdpS46AKbUddF"
    "dlcdDYrJHXRwxgeLartKJoUUkMk/A4OTMD+GTDbmZStyM6nHVyGzmFSry/a19WkYJ79xJ+"
    "/CuUNhBsr5i/YJFbNu/wPr9lCyoJmbVbqQa12SKq1h/L39/nH/5OCoH1mUqKXIkGQcg4ke"
    "ROVoNaFkzPXK5SCGKjTgkGnEGK20WTet1Ya9eQvu8vCwjL88PMx3mKqvUazsRgeYnRxiFv"
    "R2n+Rmfpxakp79KUkNUqxJsydVNwN1YcwpgAS8ubiU1GmM1SBB6cwUka7qOvtwxcNcXNgK"
    "7tFwQukUfP74fpmi1XqlokxfsuBSD2B4WpMs3bYk/dpUzLM9dcsbA3nNp++J8HvfZeGNFF"
    "qI7eF+maSqlMrFV/eZwPTZzXVDoqWPyM8jZsVKUV9hpMQCqRq+E/llYbEq8EtoRr9iE3o0"
    "Zy4XhR5NXqRs0zbuZoV4rarr8u1NBXAjhRbCa/albaWJbki4ce5Qa5oVa/gdhYHGUInUEm"
    "UExlBfAJnkc4OmbVFkYTxefVuUgjehArwJlfaFazUcvGicXsud3uP/Ae7SmN0="
)
