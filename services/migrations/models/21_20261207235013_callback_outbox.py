# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 21_20261207235013_callback_outbox.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "callback_outbox" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "endpoint" VARCHAR(32) NOT NULL,
        "stream" VARCHAR(96) NOT NULL,
        "event" VARCHAR(16) NOT NULL,
        "event_id" VARCHAR(26) NOT NULL,
        "body" TEXT NOT NULL,
        "created_at" BIGINT NOT NULL,
        "next_at" BIGINT NOT NULL,
        "attempts" INT NOT NULL
        ) /* One event for one endpoint (``after_*``, ``membership``, ``user``), written in the */;
        CREATE INDEX IF NOT EXISTS "idx_callback_ou_endpoin_73c04b" ON "callback_outbox" ("endpoint", "stream", "id");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "callback_outbox" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "endpoint" VARCHAR(32) NOT NULL,
        "stream" VARCHAR(96) NOT NULL,
        "event" VARCHAR(16) NOT NULL,
        "event_id" VARCHAR(26) NOT NULL,
        "body" TEXT NOT NULL,
        "created_at" BIGINT NOT NULL,
        "next_at" BIGINT NOT NULL,
        "attempts" INT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_callback_ou_endpoin_73c04b" ON "callback_outbox" ("endpoint", "stream", "id");
        COMMENT ON TABLE "callback_outbox" IS 'One event for one endpoint (``after_*``, ``membership``, ``user``), written in the';
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "callback_outbox";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "callback_outbox";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVtz2ziy/isovcTeUjyxYjse59Sp4zjOTHYSO+U4Z6ZqvCVCIiRxTAEaArKjzea/Lx"
    "q8SyRFyKJEMXhJLKAbJD+CfUOj8a01ZjZx+cE58Zz+qHWGvrUoHhP5x1xPG7XwZBK3Q4PA"
    "PVeR4pimx4WH+0K2DrDLiWyyCe97zkQ4jMpWOnVdaGR9SejQYdw0pc7fU9IVbEjEiHiy48"
    "9/yWaH2uQr4eHPyX134BDXTt2qY8O1VXtXzCaq7T0V7xQhXK3X7TN3OqYx8WQmRoxG1A4V"
    "0DoklHhYEBheeFO4fbi74DnDJ/LvNCbxbzHBY5MBnroi8bi9btzW6navrm+7ny9vu92WBk"
    "B9RgFceatcPf0QbuF55/Do1dHpy5OjU0mibjNqefXdv3QMjM+o4Lm6bX1X/Vhgn0JhHIP6"
    "QDwOt7SA7MUIe9nQJljm8JU3Po9viGYRwGFDjHA8qzYB8Rh/7bqEDgV8Gp3j4wJA///85u"
    "LX85s9SbUPl2TyM/C/jqugq+P3AeoxyvBRaSAckDcQ3cMXL0qgK6ly0VV9aXTlFQXxP+00"
    "wv/8fH2VjXCCZQ5l2+kL9B/kOnxBVuwA2gXgAhgw8pjzv90kpnsfz/+Yh/viw/UbBQ7jYu"
    "ipUdQAbyT0IKAH9wlpAg093L9/xJ7dXehhHZZHu9g17oznWzDFQwUkPDE8X6Cy3vbe0wHL"
    "UmZBT6Eyc8ZD+Va7YyJwKY3W+o3MfnrA7pRIgr7gCPfYVCCpwxDI1h7mBDmCE3eA9qCR90"
    "dkjFEgK/cPWnOvbx3jPUGX3pOZjkAKyNcjkLarT1Pi6OSohDQ6OcoVRtC1RL/CK9bSriFD"
    "A6X/2nRrTUTQ+VSMLh9Aj2SZ1FFnsVUtyboE6Hg5QXQ+mRBqP2fUnSGXDREbII88sD4GAi"
    "lHqI1sh8PwvC17sI16MyQv4M1Qz2P3xEOCoXunfy913IMULISDROGLEqrKC63ZDXjjDH8U"
    "T+DnTufly1edFy9PTo+PXr06Pn0RuQSLXUW+wZv3v4B7kPrQlvsL0yz486XZNBP9Jsiyda"
    "mOGFqbPDh9LV0Rc6wEcDB764nvy04JfF92cvGFrjS+9/K5tIyegL6Bk/fwpIwXdpLvhJ3M"
    "g+trr/JS2adfLpV3AdqNCeaamD1vldi5lSqeZhk+ye5C08cXX9IIkJRljR+KcL8vLQmkuN"
    "CAeYhR6TOpocBEgV9TTrzXSBku0odCn389f945PkEOR1wwj9gZts76xjWmTY2/oN0xbXbf"
    "Kd6iZVM7FVGxaTNxsZAia6wDcZJncyC3WjsKsdIL3RHmIx2Q01wmfrZUVPQ9AlB0cUY4v0"
    "gVpvmMXampFeMXQL5OHI9w7ReQ5lvpBSz3R5tqlMTwQ4TtfoX5n+arCP4fYfrTPrPhtjSE"
    "fJJng5r0L+4vwlcv5k9LSPnTXCF/Oi/jXcxFV/pS+rN8ntPM8x0MH3zhyiteiBuo9nZRwA"
    "D873KBgkoSkLbpIDbQ6Mv3xNX/GkiH9I1zYw47ZUSvpMqP1HYWxG+waJcVa2LMJZjmuOQJ"
    "tjmge5KvKqSjls1my7y5vv4AI0fZMm/ez8nUqy8f31xK8BX0ksgROSaFcWm2bNPVbeFnQX"
    "QrxbaTptyYcC61PO9OiNfNWAJ65zKcM70XWefwHgDv7tlzBQC/vf7y5sMl+nRzefH+8/sg"
    "HW8WCBi/My1Mbi7PP+Qh3pt6PEOi5IqTRcYGWc9PzI9O+H8eXsUxSbE1CNcfxyu5YBSSK3"
    "EA1IJ3kupvF3kp/QRlyWXNa0pQku0MWZZ99g1/P/vW+25ZaO/w7HAfMU82D8++DR1bNh7I"
    "H8of5uRvSeJwlTwqf8iRplQQb3GVs7rLrHnRM183N9SnOjwqlRd/VJAXf/RimVtVNztoi0"
    "twVUS05DexQjQr4Nqcef9i5zXGAvJjPuzqiZE5tualz3XKZHh18jO8OgsZXgoy3TSvBJOZ"
    "4avNcBM+2PILMNHIKqOR7JH6sY+y8EYMzRPa60+nGBMKt9TFrquD8Rxb85Beexgswqvrkb"
    "7mZtRs7iftS60Z+JvYlprKh3O0drQH5GaaL5nmQmRIkfwUf5ElPHY5GvakKKNGnCspWMa9"
    "YM17zvILGN/9dkPcKCg1h3UQuvqoBtlBe+97OKXC1mBmfK8yEBiglRECjHHMD/4lXliJ3Q"
    "xqR8EzjgKukTNR2yrVZkou5ItCDlU7D5JRu4zdC6uPkxG4+1NFMFWn9I7/ZTYv1McpMZsX"
    "Nm9Cw0ekH9tLcpnIx2qO91/MoWQF7NN8Bv0VI6tksEpMO8HVIMtv01ngzNUKOYX0Gww5jS"
    "NjaOfcmPFUaGe/RTwm9U0j9U061lQb6pjJYK2TZiiNds1VsARLA9d417amvuC5p0FfRPwd"
    "84gzpL+RmcL9vbxJTDO3s+Ykl+wY7nl+umz28GPkKybnm8RAPjnxJ/PF+eeL87eXre/bSf"
    "356MdfW5kuP12e8BPEb0s7/b7qRAEbUXWTMAry87K8+2KGO3pH38yQdOnakLuDufL02QD9"
    "H3bdZ/xMJex47JEjy0rlJlmWn8PDgQeI/Os842hKwX+5o+GToT3L8vN/cI89qMp0fnBhjL"
    "174u0foN89RwhCIc7gj6TuTQ4l0aBcAiKHafulEwbMg5H9bET06IhR+GT8tRx1LC9g+83p"
    "kTzSlw+UH7UIfNrwkwQjdD548edir4ll1C6WkS1Ui9WY0WHFOixpKWg7dRv3pBsyxesant"
    "v5Je6a5Ax/9HVTtuHgdy0xHHwlWN5wUPTtoNyQVKd9gibSMkiF9aWa34OGNmTp7oPOpja0"
    "cSIngNdGfcdWrR5B/hw5yzQ5qrnUHQWlPnA8LtDQeZAGwBBPng88Ii0WT/LIG2gHGcZyYB"
    "s5NhlPGNRqRjBobvXIOc3eRn+2/JtQJkHGOsa3VvySk8ULgEz+9IJqleEciC2Dr91oJ0W6"
    "5kH4mbbUCPJlwg/0+6+XN5copkTvPyP5WaGrLx8++AavyYquOonRmBrG1PhhTI1Y7JWd1D"
    "FHA6d1BSWKNINsxpYrDa1CRwPbkL6B4FZQolUaJYvg3srWHHAD+iakxRVgeXv5x20qBL+Q"
    "gBht0f1wffVLSD6flThXYwH750qUTQEN6U3S5+pJn8kwrGbqbdYGFYO9Bvam/PPG68RN3I"
    "wjXPJnesRgpvnq01yB2BVMx0ZJ8lSkSnffQ08UYLCdVXa7pdhM4tGqYmXguKSreThUkqdx"
    "E7wCH2c0Hfd0MU4xGZCXgjzxyINDHnUUZILFqMjVVeSAebCwkpX1lY99ismg/wQ7fARpGX"
    "qSJeRogp9ftXUitAPawiRDP9EmqXVF8obiX68F9neOure8RXbV3S6x0N4FU7X8SUPTicuw"
    "rTLtPHl74Zo48siAeHBSENpzBBrjGRox10Yczj7ELsJC4P4IIkv8dZymF5wh1Jp70VVd54"
    "7G3bA7EJL/QkPdsn6yrMiitCxI3xsxdQGbPVK4mbZayX8cqfV1Obife4dcgmHJXjbe0eCu"
    "IVVQ3iahfWIHx0DKbk6CnMJZ1IT8L5OjPU48ON2F/xQupP8U6H9+MJk9+Whbk7u3zdy98E"
    "vTWyNLczVvV+L6DZFtHuBcJ2QblU/2yclMQv/kLElAnzjlk8/93TVJbYGX7i5fygMp6ItS"
    "HW5LSvQDdP0YJK0nErpRQN+Ok8/9dqnqIsV3hvAdDXTPlMJ4YYK53/iMI6mwkjnmB+hcqk"
    "rpJUHZSmfsCH4A8wVYLWshga19Rx+DxPUp5EAEeiomkBdwWf++pE6Kk9DkVDXZ5fXUUCbl"
    "q9qUr/pYAA3MZDSZdVsMRPhqsNvTsrxSTA2UIRUskJhcgh8mwPO5PyL21CX2Z0LTRlImQa"
    "EVzEPSrtopUNYgBmKIsfRIuNcBQh9ydEdagfALTEksoDz6ookbXTOKXMyZzmscHYxsXUu6"
    "R/pM/jzL2JTh8GBPBpLGLIRr7qi0rS0rvLpl+UEgGDG43xkwYf+Zgg2a8v77sPGUM7hcdB"
    "K2v1/kccQgVnVHA35pvQvYM6JKUlnWmbTHqa12fHD/D7TXd7EzDne4RpedYM73FZVoyzfp"
    "uBBr6sOeatfNP3Z72RYQ2Q83oiaKmN8zkuoy2zS2u03D5LSbnPadhdb4m5X6m7rLgqYe+h"
    "PdIGlRSHtOK78jwfKk7I66vYBNp3cENf31JnyCycz61bfVhfZgaQskZNhgUbbAnm5tRpqv"
    "fYfS1kKHdcvzqDrH2vNYhjWdL78jBpObt7rwthkl2klMCSaTwWSy2mvr5Zis9manJtz6ac"
    "IZEdrbKIE4PzTrJxmXDsn65M94eMQkb6uSdh57VCv4HmMiCnKqOCQWkJrGhU8GG66yYrHr"
    "GDY70yF4vqXJDq9RmG6gxie4P/LHbfv5B351nIwEhHac9yCp02X1ILgLzQ7EbMMDOuHgNQ"
    "S5x2gkHS8IyE7FHd0L6FRFHjqFan+y6/DgwL8hSQPleCDUGhz6+Q85oj+cIFwEGKBb2eI/"
    "slL9KsWPq3vnfqXBNqLkMWLwy/20o0so+CHai6n85uUf2ukV4bFy+YFZeJmadmSCxYRotU"
    "O0JsxVbZhLzU79YwgSXMb5X9mADMSmJvYxk4F+ZeiVqF/hcNfGrlBUdLLrjpxe3Mz5vRPH"
    "6jYC+lq5UzeFLtVNSbeqq+VbRTW+E/W7w9PB/PHOwO9RKdRJ72jPZ2wHRNJFCF0ZKOqd4W"
    "1Vc6E7GnlWwfCQAA7bmYD4AP6RLgvzAs9jj0ICCnhjnI0JXEZiCMXEIT8gd6tRVEs8dAnM"
    "IWi1+YCLfBBTZbm6U9Bq4E/XCuL1m2HGg67YgwZdqb+BP8VmrK1dtragAlqBuRUUSCthb0"
    "WOvVY0O4j0DqR1MsFDFQANw6hgF0H5c7Q3ciCDduYHiEO7xrL2z5bZW1Vc5o4OAlNKPq9K"
    "8sVo4sqJFAW2+9J844gyZb5BurD8U01rRKjwZvkWVkI7RBXbE20i6/gWY3bV0uwytoHZ7d"
    "WUWb61Uj8GdKV0a7N5dNvwVyBQamKNvSWwFP7JIxyKxmQZZHMUhTaZrWi7kyTxMqMs/y0U"
    "BYP8KxmjpE6SY1diQbuehZTKY/S/Aw1wY44GyuaXnRIAv+zkAgxdaYCl5+XQDIALT02Omc"
    "ypyTonVLtYSB93rDOdkzwbTO5v7eh0Nvv5N75Bi1LNQDLdqPLb0FQ+7JyWiSJ3TvOjyNBX"
    "G8P5igln4PRx3mHVqf5Co5kmKEvGMa8pQUk2FV+EBdUph3giTncKKCdJZ6qTQ05quMILKa"
    "8ZhRLWPropIFlrYWXs9s3b7T1ma50YE9KbHbtP37Grve8rzWeMoV1cdkzq44upx5m3TGsH"
    "VKV1d7evGEqq8NtwX0hKmTp2uEVEqlVQpL63jvaC6jvhdhEP0yH8ORCQxyUylHgF45t43C"
    "59d7uj1xuVm2UCchVHMHL3ICzN0S4rQ9YF8oudlyE10d3B0RKXD4SKLK2d6i/U1+HiJAHS"
    "8lUJ/TJ6AXOcAx1sAw3aF+tfn/n1+qYeXB7JiTMlfpW+yZSPFjR2Rde5o3uQCgSbRj3ECf"
    "b6Iz8pSF52H7a38umYHKC3xCUirBUYtOYW8zNavi5faJGWN+v3m0oWNn7lD6ubPkkR+0/W"
    "y1JLYVehRgIR3f2L9TQiv8AC/psq/boHop9NRY993T9DHpGvhwQFYeEBn7PBAMEOfzco2G"
    "p7bDKBiq0MNgA9YNexsyPAlVwl04UU2JM/A4GTED/GmazNx1akZlKvT2NlMclWlexr6tsw"
    "Sn7jSn6CZ3DGmk7QPsFi4vZPiNtj6QWNJ1mpCwWFZWOWxnj8ncOjV0enL0+OIokStRQJkk"
    "WhQclXoW2tJpiMuF45HcS4CjUo8ZBTc3NJFZO8wpvrqo63TXV5fFxGXx4f5ytM6DNnBW97"
    "qtfIK75VBn4rxzEOettLfWPfTyjpHv+ujk+RXqvyXiFvCavEpDOEKXp38VG6rkMHBglSl+"
    "4JhYNV0PmnKx6uhYat6JH0Rozdoy83HxZd5EqvVLTSmkx4VQMYP7k+n197ZxZdm5RMtTt5"
    "4xsDuUyybX6q7elC2rgSNBrwRgwNxPb4sMyitqTKxVf1Gcdg6+K6JtbSDfHXcbNspaiv0F"
    "LyAqpyZlL+m8g0PNLBwkAvkTH7yzGmR33mcpHpUecg8e7XYa6rideovDpf3miAGzE0EF6z"
    "L3AnRXRNzI03cIhBlq3hdxQaGj0gqcTKCIShugAxi/81mrZFloXReNVtEQu+BA14EyzNM9"
    "fM4fY7KT1qovQ+eQxOEctSe2FXoeKb+EQVqL6yim6borZGp+esSwzk6zT1vwbSIX3jyo+s"
    "X+LiBwm61sp7zNE4eCuJI8NJt9MMvVZ8Nu40S7PtPsKVlK6eTuyVIvVpPmNF7KIVccGokI"
    "r/hkj4eWZuwxxFoU3R92m7nk9cpVs9IbLB+NS1mc9F9ofxqavLFIDPQAPbkN540yVsu36f"
    "TERWwKKwVmKSzVRL1KiWKMjXDAukICUjoG+cldd5UcbKk1T5K3kvFqw8Exv6cay6LxO1TS"
    "fDmgt6Cq24qaLZYmBI86D3pxzxXjNzbcOBIfZI9cyHiMHYD8vtBxN2q3IzxtjRQzekb6Bb"
    "cdgp0lZxKdpXBaVoXy3E3Zx/Z1UJLzoVJuAwNoOm55wAfYQ7xydawc6Io4ETe/0yud5ZyU"
    "0NDSVCQVzbnw5ZjC+t4UsPGSXakzzBVNEmxWZO8Jp4fedT2xGXcDBiK8PzS/S2i7w/DHRd"
    "lw235/+ZaP1Wy9/UKlDUVPyTYWaht3c/YmigxXdaJvJ5mh/4PF2Ie8a7jTTwDThMlKNEzm"
    "G077103D7iaF6ko4rIvU0EdtxFhG/J1xyRHHNsEOFv36vCuADS28s/blMm80J5pvEs6Plw"
    "ffVLSD5fs2nOC2dTT6/kdczRuCm9fomRl9GVH1jKS+ja5dopT6p9VROP4wK7Lox0rQpp3r"
    "DHVlYC0QJRuzCHKCDv+tU5S3khqr6nKoEdHe1EqD1hEnK0Z1nq1IfuPyyrjSxrTMY94vGR"
    "M/F/Q40Ty9qfL07dmnuXFVzijiZKXiM2UEWv+yM4qQI5AnlkwjzBXyM7WckaaKILC6ixIk"
    "n3oCqpQI+Yo6Ej7xFNJ/sHd9Sy5O0TPLYsv6A282wCj4PuyQyOvZIT80Hep6rooiqb+rd6"
    "9j9Tx/5fecNn6jH9MZ5xOANLjs/kVeWdj4jjxTcCdFggjIQzlq9HPp9lObZl+ZcsWXX7z1"
    "Y4nopuqMvCX2HlVOMr1s5XTL6wsroyydNAD2b9W1njL6F8BnTI0UCAfy6zy/3n/F3uPy/s"
    "cifhOQulp3DI0EB4D8vAe5gP72E2vJqlGpI8DQR5/ZUass/fy3cRc87f201wN+0g1nsV8Q"
    "dYJ69rvd8fAHpTu3rX/ffv/wXkZXKa"
)
