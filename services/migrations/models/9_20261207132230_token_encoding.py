# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 9_20261207132230_token_encoding.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Format conversion (issue 26): a device token's payload encoding (json, cbor, msgpack).
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "device_tokens" ADD "encoding" VARCHAR(8) NOT NULL DEFAULT 'json';
    """,
    "postgres": r"""
        ALTER TABLE "device_tokens" ADD "encoding" VARCHAR(8) NOT NULL DEFAULT 'json';
        ALTER TABLE "device_tokens" ALTER COLUMN "encoding" DROP DEFAULT;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "device_tokens" DROP COLUMN "encoding";
    """,
    "postgres": r"""
        ALTER TABLE "device_tokens" DROP COLUMN "encoding";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXdty2zgS/RWUXsauUjK2LF/W+2Q7yUwmiZ1ynNmpykzJEAlJiCiAIUBfNut/XwC8Sy"
    "RNyKJM0XhKDHST1CHY3acBNH52ZtRGDnt9gjxsTTrH4GeHwBkS/5nr6YIOdN2kXTZwOHSU"
    "KExkhox70OKidQQdhkSTjZjlYZdjSkQr8R1HNlJLCGIyTpp8gn/4aMDpGPEJ8kTHt39EMy"
    "Y2ukMs+tOdDkYYOXbmUbEt763aB/zeVW3vCX+nBOXdhgOLOv6MJMLuPZ9QEktjwmXrGBHk"
    "QY7k5bnny8eXTxf+zugXBU+aiASPmNKx0Qj6Dk/93OEgaesMBucXV4Mvb68Gg44GQBYlEl"
    "zxqEz9+rF8hFe93f5h/2jvoH8kRNRjxi2HD8GtE2ACRQXP+VXnQfVDDgMJhXEC6g3ymHyk"
    "BWTPJtDLhzalMoevePB5fCM0ywCOGhKEk1G1Dohn8G7gIDLm8tPo7e+XAPrnyeXZ7yeXW0"
    "JqW96Sis8g+DrOw65e0CdRT1CWH5UGwqF4C9Hd3dmpgK6QKkRX9WXRFXfkKPi0swj/8eXi"
    "PB/hlMocyja2OPgfcDBbsBUbgHYJuBIMeeUZYz+cNKZbn07+mof77OPFqQKHMj721FXUBU"
    "4F9NJAj6YpayIbhtCa3kLPHiz00B4tkl3smvVm8y2QwLECUv5i+ftCl/Vm+J6MaJ4zC3tK"
    "nRmejcVbHcwQh5U8WucDuv/1Bjo+EgIWZwAOqc+B8GFA2tYhZAhgzpAzAluykVkTNIMgtJ"
    "Xbrztzr28V13uCL52iex2DFIqvxiA9rz/NmKODfgVrdNAvNEay6xH/Kl+xlneNFFpo/Vfm"
    "Wxtigk58Pnl7I/1IXkgdd5ZH1UJsgKQcq2aITlwXEfsVJc49cOgY0BHw0A21oBQQdoTYwM"
    "ZMXp51RQ+0wfAeiBt492Do0SnyAKdgiq2p8HE3wrAgJi0KW7RQdd5oxTTgFI9fChP4V6+3"
    "t3fY29k7ONrvHx7uH+3ElGCxq4wbnL7/TdKDzIf2OF/w8+AvtmZ+LvptsGWrch0JtDa6wZ"
    "aWr0g0lgI4HL3NxHevVwHfvV4hvrIri+9U/C6toCeUb+Hg3T2owsIOiknYwTy4gfeqbpUD"
    "+cet8iZAuzbD3JCw540yO1fCxZO8wCfdXRr6BOZLBAFCsmrwQwC0LBFJAKUFRtQDlAjOpC"
    "4lQxT5l8+Q92+gAhfBocCX309e9fYPAGaAceohOyfWWd11TWjT4C9oc0KbzSfFzxjZNM5F"
    "1BzauA7kwmTNdCBO66wP5E5nQyFWfmEwgWyiA3JWy+TPHjUVlockFAOYk84vc4VZPRNXan"
    "rF5AWgOxd7iGm/gKzeUi/gcT7a1qAkgV9m2KZLjP+sXk3wv4ThTyxqy8fSMPJpnTV60u8s"
    "mISv38wfVbDyR4VG/qhBGfuvTDGyBc6q2rtlZFVyv2oktZbFL89JTloYcBSzQPWvBtKRfO"
    "tC6N1elc9eSBVnCXtHC0wwmDDKy3NQ6iBICuhgSm0O6KHQqwvpuGW9KzVOLy4+yivHKzVO"
    "38/5rfOvn07fCvAV9EII8wJ3ZsLpl5umPaNELheBIVALPi/TX+r7rJRkxUTtBUEgrXYMrq"
    "/t45/w4fjn8OH6GmztHu9uA+qJ5vHxzzG2ReNr8YcDGR8w9EOIYKaWw4g/xJV8wpG3mLet"
    "7zYrTuMWO5CWeurdfqWVfv2SlX79ncectZnSW2WMnnYc0Qei5zbSWutzGjsb7zEWkJ+x8U"
    "DPjMyptW9BQK/KnHWveM66tzBnrSDTnbhOKZkRvtwIN0HpM78Aw3Hr5Lj0lgTJpKrwxgrt"
    "M9qryddoEKoUy0GzYZiymzMxoeK7D5fIidnPHPYhR/qkLrKBhuUhGmRRazhSHupknCFaOV"
    "wzwbGYZaZeWIWFQGoxzi8MhFoT7KoVyWodMuPiRQFM1KKdND3MWfiz/HVyGOI3RZVVpwjD"
    "/jHrfprj/cy6n/XY6uxkJrT1SWRay4TYy0V43ykmaAnss3oG/SUpPBotkzxJaZkJ/KUXUF"
    "BHi9tE8mvkNrM4GNq4tODM59qTd7GOmbnTmLlzMSHaUCdKBmudWVIRtGumW1MqLZxMWNnk"
    "zQJzz4K+iPg76iE8Jh/QvcL9vXhISHJXghfMYm4Y7kU8XTR78DbmiunxJjAQvxwFg/ns5M"
    "vZyZu3nYfnmWP+hBiDys/nUP6gq1vO+ZVQZdIfynfDDTeCmFsIuMjLsnNwfb0lG7pyVnf7"
    "+loxetHGkHjJXhdY2FatHgLBODjOyQvUdau/iZxuHmGPcTDGN4iBMXRfjTyEAPWEjniAbj"
    "gjLS5sA2yjmUtltRIgL1q4fzrJPcgYUry1b53gIWST9dR0xIubv17VdFNx3iHfAJa7HONv"
    "yv1N2qtrE7C1s97Wka/E4FQd1IlGC4d1DdtjNKPU1kaoq4dWoaOBbSTfQnBrKA+A7nIm+6"
    "9EawG4oXwbZkRLsLx6+9dVhsMu1GSb3Yc9Hy/Of4vE5wu1za2xhkFNsyzWxbXwIvknFcLb"
    "HMxXVgcvkxcT4Xm0OLYq7mkdg/3y2JvSI2vfo+g6OeUDi0d6rGCG+fLDXIEoGL/W5EZKpy"
    "ZXuvkMPbX508bLrEvMqJmZu2XNygg7aKBZmDSt07oBXgPHmfizoS7GGSUDci7IDdnyFZTe"
    "+iy8CJKTJoXFuWKJboX6XG5aeKWbn79Fi6nCcj9mwVyDDLNZMLd++2wKZdVcxYkSB5McgE"
    "tXVSRKZlWFzgoWU5Ss9qJkJvWx5q1rlGidlRPJr835bdrGqYYEzueU4xG2CmslZPpLg2aS"
    "ktSolZBWi6vPyq0pYAtmOzkF4mfcq04mqxdISY/eAgStSc5BIyu/uilw22hjZeL29cftQ2"
    "prJcQjeXP21BMS4mYb+cutbZT2x2e+x2jurtMcqcq+e2AphYou/GqCgKwMkXWm2AYTKEaE"
    "Ld1qqpz8lrgzvkEeRkytDPUgGcv/jrjwyJjnOPEarm/ycZv03W2OX2/VojCTkKs5g6HK6e"
    "iaj5SS2aK6cb473BhSeHBepr/UX4dbNPSOz4v2c8T7O249zDkiss6D3HYRtv8iqO+taBG+"
    "k4kLqtqC6nRO35O3B2Lg+Ei0QA5cPyjvP7eBpJb7/E225A4TB0pXzhD0rAlQo1bcdltuTW"
    "H+DL0Gb9QGoXDTSthqjqdp/Bda5uWjwa7n7LNaLXRJq18FZHjly/VNn4WJ/YMO89xS1FXq"
    "kaSJHnynQ43Mr1SR/E3uhAnOeqY+H9K77WPgIfF6hBW/xXwC5A98RUcj4BOOHSnOu8D2qO"
    "siuytL3GJyAx2cc7hZbXfJpZAceuLP0OCkzI8hk4352MrcTOb1acwsptXqsn1tfRvGya/d"
    "ybvw3qEwB+XipH1KxeTtn5C3h4IFzdy8pQuF1iWt0hrG39vtH/aP9g76sUWJW8oMSU45V3"
    "THtaPVlJIx10svBzFUoQHF0pHnUa1N51mtNuwxnXOX+/tV/OX+frHDlH2NYmVXKsDsFBCz"
    "sLf7KDcL4tSK9Ow/gtQgyZoUe5LrZqBaGHMMIAHvzj4J6jTG8iLh0pkpIl3ZdfL5nEVzcV"
    "EruEXDCaVT8PXy4yJFq/VOZTN96QWX6gKGpzXJ0m3KpF+bFvNszrrltYG84iqSgaHRgDdW"
    "aCG2+7tVJlWFVCG+qs8Eps9urhsSLV2iYB4xL1aK+0ojJS+UquG8029zyarQL6EZ/Y5N6N"
    "GcsVwWejQ5SdmmcgTNCvFata4rsDca4MYKLYTX7EvbSBPdkHDj1KHWNC/WCDpKA42hFKkl"
    "ygiNoboBMpPPDRq2ZZGF8Xj1bVEKvwQNeFMq7QvXaiiuY5zei3F6nz0qS0/lub2oq9TxuY"
    "FQDa6vqqN7TlPboDLvqzIDxT7NHLZam8WFNwJ0rZnfRKN18NaSR5YnYPo5fq2koHus0TqE"
    "azmlwHftpTL1WT0TRWxiFHFGCReO/xIJ+Fnu2oY5idKYwgpkB14gXCetdpFoMJy6MeO5LP"
    "4wnLq+lQJI77CTSN6w6QqxnWUhV/+wybSaqdanUa0v/4SOkiUZTzmho8lRXm+nSpQnpIpn"
    "8nYWojyTG3o5Ud1XV20TyYnmwp7SKM5XMs+YGNKsDv6UuuANC9fWnBiit0QvfIgVTPzweP"
    "xg0m6r3gyQ2aeI9dCN5FtIK3Z7Zd4qKYV6WFIK9XAh74b/m1eluuzwylDDxAyazDkF+gT2"
    "9g+0kp2xRgsHdg2nVzZ6VXJbU0OpVBDT5tORiuHSGlx6TAnSHuQppZrOkGrnAH9W1vfwf7"
    "eYAkU="
)
