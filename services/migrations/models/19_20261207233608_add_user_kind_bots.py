# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 19_20261207233608_add_user_kind_bots.

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
    "eJztXW1z27ay/isYfYlzRnFjxXZ83S/Hdpw2rWNnHOe2M/UZCSIhiTUFqARlRyc3//1iQf"
    "BNIilCFiWKwZc2BrAktQR3n108WHxrjZlNXL5/RjzHGrVO0bcWxWMi/jHX00YtPJnE7dDg"
    "474rh+J4TJ/7HrZ80TrALieiySbc8pyJ7zAqWunUdaGRWWKgQ4dx05Q6/0xJ12dD4o+IJz"
    "r++o9odqhNvhIe/jl56A4c4tqpR3VsuLds7/qziWz7QP33ciDcrd+1mDsd03jwZOaPGI1G"
    "O9SH1iGhxMM+gcv73hQeH55O/c7wFwVPGg8JHjEhY5MBnrp+4uf2u3Fbq9u9vrnrfr6863"
    "ZbGgqyGAXlikfl8tcP4RFedQ4O3x6evDk+PBFD5GNGLW+/B7eOFRMISvVc37W+y37s42CE"
    "1HGs1EficXikBc1ejLCXrdqEyJx+xYPP6zfUZpGCw4ZYw/Gs2oSKx/hr1yV06MOn0Tk6Kl"
    "Do/57dXvx6drsnRr2EWzLxGQRfx7Xq6gR9oPVYy/BRaWhYDW+gdg9evy6hXTEqV7uyL61d"
    "cUefBJ92WsO/fb65ztZwQmROy7Zj+ej/kOvwBVuxA9ouUC4oA6485vwfN6nTvY9nf86r++"
    "Lq5lwqh3F/6MmryAucC9WDgR48JKwJNPSx9fCEPbu70MM6LG/sYte4M55vwRQPpSLhF8Pv"
    "Uy7rXf8DHbAsZ6Z6Cp2ZMx6Kt9odEx+X8mit38nsp0fsTokYYPkc4T6b+kj4MAS2tY85QY"
    "7PiTtAe9DIrREZY6Rs5cv91tzrW8f1nuFLH8hMxyCp4esxSNv1pylzdHxYwhodH+YaI+ha"
    "4l/hFWt511CggdZ/bb61JibobOqPLh/Bj2RB6qizGFWLYV0C43g5Q3Q2mRBqv2LUnSGXDR"
    "EbII88MgvDAGFHqI1sh8PleVv0YBv1Z0jcwJuhvsceiId8hh4c60H4uEdhWAgHi8IXLVSV"
    "N1pzGHDuDH+USOB/Op03b952Xr85Pjk6fPv26OR1FBIsdhXFBucffoHwIPWhLY8Xplnqz7"
    "dm00ztN8GWrct1xKq1yaNjafmKWGIlBavZW0/9vumU0O+bTq5+oSut3wfxu7RAjxrfwMl7"
    "cFwmCjvOD8KO55UbeK/yVjkYv9wq74JqN2aYawJ73kmzcydcPM0CPsnuQugTmC8BAsTIsu"
    "CHImxZAkkgKYUGzEOMiphJXgogCvw15cT7GUngImIo9PnXs1edo2PkcMR95hE7A+us77oG"
    "2tT4C9odaLP7QfEWkU3tXETF0GbiYl+YrLGOipMym1Nyq7WjKpZ+oTvCfKSj5LSUyZ8tNR"
    "WWR0AVXZyRzi9yhWk5gys1vWL8AsjXieMRrv0C0nIrvYDl8WhTQUmsfsiwPaww/9NyFan/"
    "R5j+1GI2PJaGkU/KbNCT/s2DRfjqzfxJCSt/kmvkT+ZtvIu53xWxlP4sn5c083wH0wdfuI"
    "yKF/IGsr1dlDCA+LtcoqASAtI2A8QGgr78SFz+X0PT4fjGhTEHnTKmV4zKz9R2FsyvWrTL"
    "yjUx5hJMc0LyhNicovtCripNRy2bZcuc39xcwZUjtsz5hzmbev3l4/mlUL5UvRjk+DmQwo"
    "Q0W8Z0dVv4WTDd0rHtJJQbE86Fl+fdCfG6GUtA712Gc6b3ouicvgcgu3t4rkDB726+nF9d"
    "ok+3lxcfPn9QdLyZMjBBZ9qY3F6eXeVpvD/1eIZFyTUni4INQs/P4kfXBBdfMAr0PqxUsI"
    "CPU/2FONlKjCy5sHZDCUqKnaJezz79hr+ffut/7/XQ3sHpwUvEPNE8PP02dGzRuC/+kBEZ"
    "J/+IIQ6X9EXxh7jSlPrEW1xnq+42a152y/cODUX1B4elmNmHBczsw9fLgH3dPPEWF4GqyK"
    "mIb2KFfIqS2hzAfN0odCl1OObDrp4ZmRNrHoGrU4Zj1MnnGHUWOEZSZbpEo4SQmeGrzXAT"
    "wG75BZh8WJX5MPZEg+i7rHojgeYZ7fUv6I8JhUfqYtfV0fGcWPM0vfZETKSvrkcsze2Q2d"
    "LP2hlZM+VvYmNkipHlaO2pVsPNNF8yzX0/w4rkk8z9LONh8lzL81xJwzLuq1XXOeSnBN//"
    "fkvcKCk1p2uVuvooL7KDeO97OKXCVjUzvleZCFTaykgBxnrMT/4lXlgJPr3ktL/gSEmNnI"
    "nc2Ce383FfvCjkUMl9T2btMvjzq18nI3H3l8xgyk4RHf/H0OfrE5QY+vzmITR8RPq5vaSU"
    "yXysFnj/zRxKVtB9Ws5of8XMKhmsktNOSDUI+W2ah8xcrZRTOH6DKadxBIZ2LowZT31t/l"
    "UkY8hXGuQrEVhTbVXHQkbXOkQ3Ado1V8ESIg1c413bmvpC5J5W+qLG3zOPOEP6O5lJvX8Q"
    "D4lp5obKHHLJjuk9L04XzR5+imLF5HwTOhC/nAST+eLs88XZu8vW9+1Qfz4G+ddWZshPlx"
    "N+VP62dNAfuE6kxIis3IORYohlRffFAvf0np7PkAjp2sDdwVxG+myA/o1d9wU/lYQdjz1x"
    "1OuluEm9XsDh4SADg4L7vOBoSiF+uafhL0N7vV7A/8F99ihrowXJhTH2Hoj3ch/94Tm+Ty"
    "jkGYIryWcTlxLaoFwoRFymHWzeHzAPrhzw4dCT44/CX8Z/FlcdixvYQXP6Sh6xxA/Kz1qo"
    "mDb8JAGEzicv/lrsNbmM2uUyso1qsRszPqzYhyWRgnZQt/FIuiFTvK7puZ1f4q4JZ/hj4J"
    "uygUPQtQQ4BE6wPHCQ49uq4I1wpxZBE4EMUml94eb3oKENLN2X4LOpDW2ciAngtZHl2LLV"
    "IyiYI6eZkKOaW91TcOoDx+M+GjqPAgAM8eTVwCMCsXhCRjxAWzGMxYVt5NhkPGFQLRjBRX"
    "PrF8559jb6qxU8hIQEGesY31rxS05un4dh4k9P1UsM50CMDL52Iy5/etd9+Jm25BXEy4Q/"
    "0B+/Xt5eongk+vAZic8KXX+5ugoAr2FFV01iNFDDQI0fBmrEZq/spI4lGjitKyiSo5lkM1"
    "iutGqldjR0G45voHIrKBIqQMmicu9Ea45y1fgm0OIKdHl3+eddKgW/QECMNole3Vz/Eg6f"
    "ZyXO7fLHwckGZSmg4XhD+lyd9JlMw2pSb7M2qBjda+jeFCDeeKWyiZtxiEj+TI8EzDRffZ"
    "pLJXZ9poNRkjIVudLdj9ATJeBsZ5XdbikxQzxa1awMHJd0NY8nSso0boJXEOOMpuO+ro5T"
    "QkbJS5U88cijQ550HGRCxLjI1V3kgHmwsJLF+srXfUrIaP8ZOHwEtAw9yxJKNCHOrxqd+N"
    "oJbd+QoZ+JSWpdE7uh+q/XAvt7Rz5b3iK77G6XWGjvAlQtf9bNdOIybEumnSceL1wTRx4Z"
    "EA/OqkF7jo/GeIZGzLURh9P3sIuw72NrBJkl/nNM01On2LTmXnRV97mncTfsDgTyXwjUe7"
    "2fer0IUfZ6QN8bMXkDmz1ReJi2XMl/Gsn1dXHxgHuHXIJhyV403lP11EAVFI9JqEVsdRCh"
    "6OZEcQpnURMKvkyO9jjx4HwR/lO4kP6T8v98fzJ79uGqhru3Te5e+KXprZGlpZq3K3H9QG"
    "SbRwjXSbON4pN9cjJJ6J+cJQT0iVOefB7srkl6C7x0d/lSGaCgL1p1eCxh0ffRzZMirScI"
    "3UiNb8fk86BduLrI8Z0ifE+V75lSuF5IMA8aX3AkHFaSY76PzoSrFFESlK10xo7P92G+gG"
    "ivt0Bga9/TJ0VcnwIHQvmpeIC4gcush5I+KSahialq2OX19FCG8lUt5as+CKCBTEbDrNti"
    "IiJwg92+FvJKCTXQhlSwQGK4BD9MguezNSL21CX2Z0LTIClzQCEK5uHQrtwpUBYQw2DIsf"
    "RJuNcBUh/i6o5AgfAXQEnsQ3n0RYgb3TPKXMxB5zVeHUC2LpLuE4uJP08zNmU4XO3JQALM"
    "Qrrmngps3euFd+/1giQQXFE97wyEcPCb1AZN8fwWbDzlDG4XncUc7Bd5GjHIVd1TJS/Quw"
    "97RmRJql7vVOBxassdHzz4B9qzXOyMwx2u0W0nmPOXcpTfFm/ScSHXZMGeatfNP/h52RYQ"
    "0Q8PIieKP79nJNVltmlsd5uG4bQbTvvOqtbEm5XGm7rLgqYe+jPDIIEoBJ7T4nckRJ7F7q"
    "jbC9g0vUPV9Neb8AkhM+tX31YX4sHSCCQU2GBRNoWnW5ux5mvfobS11GHdeB5Vc6w9j2Wg"
    "6Xz7HQkYbt7qxttmlGiTmBJChsFkWO21jXIMq73Z1IS7gCackaG9iwjE+anZgGRcOiUbDH"
    "/BwyMmeVuWtPPYk1zB9xjzoySnzENiH6hp3A+GwYarrFzsOi6bzXRQv28p2eFnFNIN5PUJ"
    "tkbBddsB/yCojpNBQGjHvAcxOl1WD5K70OxAzjY8oBMOXkPAPUYjEXhBQnbq39M9NU5W5K"
    "FTqPYnug7294MHEmOgHA+kWtWhn/8SVwwu5xPuKx2gO9ES/GTp+iXFj8tn50GlwTai5CkS"
    "CMr9tKNbSPVDthdT8c2Lf2jTK8Jj5fITs/AyNXFkQsSkaLVTtCbNVW2aS85O/WMIElIm+F"
    "8ZQCqzqan7WMiofmXVS1O/wuGujV2hqOhk1x05vbiZ83snjtVthOprFU7dFoZUtyXDqq5W"
    "bBXV+E7U7w5PBwuudwpxj6RQJ6OjvUCwrQaJECEMZaCod0a0Vc2N7mkUWanLAwEctjPB4H"
    "34jwhZmKcijz0KBBSIxjgbE7iN0CEUEwd+QO5Wo6iWeBgSmEPQavMBF8Ugpspydaeg1SCe"
    "rpWK1w/DTARdcQQNvlJ/A39KzKCtXUZbUAGtAG6pAmkl8FYU2Gtls1WmdyDQyQQPZQI0TK"
    "MCLoLy52hv5ACDdhYkiENc0+u9PF2Gt6q4zT0dKCglfq8k+WI0ccVEihLbloBvHFEm4RvQ"
    "hcU/5bRGhPreLB9hJbxDVLE90eZnHd9iYFctYZfBBma3V1Nm+dZK/RilS6dbm82j21Z/BQ"
    "alJmjsHYGl8E8e4VA0JguQzY0oxGS2HNudJAcvA2X5b6EoGRTcyYCSOlmOXckF7ToLKcVj"
    "DL4DDeXGEg20zW86JRT8ppOrYOhKK1hEXg7NUHDhqcmxkDk1WeeEahf7IsYd60znpMwGyf"
    "2tHZ3OZj//xjdoUaqZSKYbdX4bmsoHnZMyWeTOSX4WGfpqA5yvme8MHAvnHVad6i8EzTQx"
    "smQe84YSlBST+UVYUJ1yyCfidKcP5STpTHZy4KSGK7xAec0olLD2q5sCkrU2Vga3bx6395"
    "mtdWJMON7s2H3+jl3tfV9pOQOGdnHZMemPL6YeZ94yr61GlfbdXUsKlHThd+G+kJQzdexw"
    "i4hwq+BIg2gd7anqO+F2EQ/TIfxz4AOPy89w4hVc3+Tjdum72x2/3ihulknIVZzByN2DsJ"
    "SjXdaGrEvJr3fehtTEd6ujJS4fCfWzvHaqv9Bfh4uTBIaWr0oYlNFTwjEHWm0DVe2L9a9P"
    "g3p9Uw9uj8TEmZKgSt9kykcLHrui+9zTPaACwaZRD3GCPWsUkILEbV/C9lY+HZN99I64xA"
    "9rBarW3GJ+xsvX5Qst8vJm/X5TZGETV/6wvumTMLG/sX6WWwq7Cj0SmOju36yvkfkFEYjf"
    "ZOnXPTD9bOr32deXp8gj4vUQVRAWfuArNhgg2OHvqoKttscmE6jYymAD0CN2HTs7A1zJXT"
    "JDSB974k9lcBLmxwSTtfnYitxM6vVprCwmxaqyfU19G8bJb9zJT/AMzljTSdonREze/hl5"
    "eyyioPEki7pQUFg2FmlMxN85OHx7ePLm+DCyKFFLkSFZNBqUfPW10WpCyJjrlekgJlSoQY"
    "mHnJqbS6qY5BXeXFd1vG26y6OjMv7y6CjfYUKfOSt421O9RlHxnQT4rZzAWPW2l8bGQZxQ"
    "Mjz+Qx6fIqJWGb0CbwlLYtIpwhS9v/goQtehAxdR1KUHQuFgFXT26ZqHa6FhK3oi/RFjD+"
    "jL7dViiFzpnYpWWpOEV3kBEyfX5/Nr78yia5PIVLvDG9+YksuQbfOpticLtHFpaDTUGwk0"
    "ULdHB2UWtcWoXP3KPhMYbN1c1wQt3ZJgHTcLK0V9hUjJU6PKwaT8N5EJPNLJQuWXyJj97R"
    "joUZ+5XAQ96pwk3v06zHWFeI3i1QX2RkO5kUAD1Wv2Be6kia4J3DiHQwyysEbQUQg0+jCk"
    "EpShjKG8ATGL/zWatkXIwni86raIqS9BQ70JkebBNXO4/U5aj5o4vU8eg1PEstxe2FXo+C"
    "bBoApcX1lHt01TW6PTc9ZlBvJ9mvy/hqbD8Y0rP7J+i4sfhdK1Vt5jicapt5I8Mpx0O83w"
    "a8Vn406zPNvua7iS0tXTib1Spj4tZ1DELqKIC0Z94fhviVA/z+Q2zI0oxBRWMLbrBYOrDK"
    "snRDSYmLo287kIf5iYujqmAHwGGroNx5tougS2sywy8bMSFoW1EpNiplqiRrVEn3zNQCAF"
    "lAw1vnEor/O6DMoTo/JX8l4voDyTG/pxUN2Xidymk4HmVE8hipvKMVtMDGke9P6cI95rBt"
    "c2nBhiT1QPPkQCBj8sxw8m7VblZoyxo6fdcHwDw4qDTpG3ikvRvi0oRft2Ie/m/DerSnjR"
    "qTBKwmAGzcg5ofQR7hwdayU7I4kGTuz12+R6s5KbmhpKpIK4djwdiphYWiOWHjJKtCd5Qq"
    "iiTYrNnOA1ifrOprbjX8LBiK2MyC/R2y6K/jCM67psuL34z2Trt1r+plaJoqbqP5lm9vX2"
    "7kcCDUR8J2Uynyf5ic+ThbxnvNtIQ79KwmQ5SnAOo33vpfP2kUTzMh1VZO5t4mPHXdTwHf"
    "maY5JjiQ1q+Nv3qnRcoNK7yz/vUpB5oTzTeKZ6rm6ufwmHz9dsmovC2dTTK3kdSzRuSq/f"
    "YuQxuvITS3mErl2unfKs2ldbjTi+/z8XPvcN"
)
