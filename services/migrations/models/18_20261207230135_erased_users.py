# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 18_20261207230135_erased_users.

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
    "eJztXVtz27iS/isovcTeUjy2fInX87K2k5zJmcROOc7OqRqfkiASkjimAA1B2dHJ5r8vGg"
    "RvEkkRsihRDF4SC+gGySbY/XWj0fjeGjObuPzgkniONWpdoO8tisdE/DHX00YtPJnE7dDg"
    "474rSXFM0+e+hy1ftA6wy4losgm3PGfiO4yKVjp1XWhkliB06DBumlLn7ynp+mxI/BHxRM"
    "ef/xbNDrXJN8LDn5PH7sAhrp26VceGa8v2rj+byLYP1H8vCeFq/a7F3OmYxsSTmT9iNKJ2"
    "qA+tQ0KJh30Cw/veFG4f7k49Z/hEwZ3GJMEtJnhsMsBT1088br8bt7W63Zvb++6Xd/fdbk"
    "tDQBajIFxxq1w+/RBu4XXn6OTNyfnx2cm5IJG3GbW8+RFcOhZMwCjFc3Pf+iH7sY8DCinj"
    "WKhPxONwSwuSvR5hL1u0CZY5+Yobn5dvKM0iAYcNsYTjWbUJEY/xt65L6NCHT6Nzelog0P"
    "+9vLv+7fJuT1DtwyWZ+AyCr+NGdXWCPpB6LGX4qDQkrMgbKN2jw8MS0hVUudKVfWnpiiv6"
    "JPi00xL+55fbm2wJJ1jmpGw7lo/+D7kOX9AVOyDtAuGCMGDkMed/u0mZ7n26/Ne8uK8/3l"
    "5J4TDuDz05ihzgSogeFPTgMaFNoKGPrcdn7NndhR7WYXm0i13jzni+BVM8lIKEJ4bnUybr"
    "bf8DHbAsY6Z6Co2ZMx6Kt9odEx+Xsmit38nslyfsTokgsHyOcJ9NfSRsGALd2secIMfnxB"
    "2gPWjk1oiMMVK6cv+gNff61jHeC2zpI5npKCRFvh6FtF17mlJHZycltNHZSa4ygq4l9hVe"
    "sZZ1DRkaqP3XZltrooIup/7o3RPYkSxIHXUWo2pB1iVAx8sposvJhFD7NaPuDLlsiNgAee"
    "SJWRgIhB6hNrIdDsPztujBNurPkLiAN0N9jz0SD/kMPTrWo7BxT0KxEA4ahS9qqCovtGY3"
    "4MoZ/iyewH93OsfHbzqHx2fnpydv3pyeH0YuwWJXkW9w9eEf4B6kPrTl/sI0S/z52myaKf"
    "0m6LJ1mY5YtDZ5ciwtWxFzrCRgNXvrKd/jTgn5Hndy5Qtdafk+iufSAj2KvoGT9+isjBd2"
    "lu+Enc0LN7Be5bVyQL9cK++CaDemmGsCe95KtXMvTDzNAj7J7kLoE6gvAQIEZVnwQxG2LI"
    "EkkORCA+YhRoXPJIcCiAK/ppx4vyIJXIQPhb78dvm6c3qGHI64zzxiZ2Cd9Y1roE2Nv6Dd"
    "gTa77xRvEdnUzkRUDG0mLvaFyhrriDjJszkht1o7KmJpF7ojzEc6Qk5zmfjZUlVheQRE0c"
    "UZ4fwiU5jmM7hS0yrGL4B8mzge4dovIM230gtY7o82FZTE4ocI2+MK8z/NV5H4f4bpTy1m"
    "w21pKPkkzwYt6V88WISvXs2fl9Dy57lK/nxex7uY+13hS+nP8nlOM893MHzwlUuveCFuIN"
    "vbRQED8L/LBQoqSUDapoPYQNCX74nL/zUkHdI3zo056pRRvYIqP1LbWVC/atEuK9bEmEsw"
    "zXHJE2xzgu4LvqokHbVsNlvm6vb2I4wcZctcfZjTqTdfP129E8KXohdEjp8DKYxLs21M5+"
    "FVwEaKzSCNHUQa14xCwhRWglpAHKn+QuRhJShLLlXcUoKSbBeo17MvvuMfF9/7P3o9tHd0"
    "cbSPmCeahxffh44tGg/ED4lxOflbkDhcJoSJH2KkKfWJt7hyUd1l1ryQkW++G4qTjk5K5b"
    "qeFOS6nhwug0pmUbtSL1V8Eyt4qIprcyb7cOctxoLkx3zY1VMjc2zNS4nplMna6ORnbXQW"
    "sjakyHRTNxJMZoavNsONS7DlF2AiDFVGGNgzDUJ5ZcUbMTRPaa9/iXRMKNxSF7uujozn2J"
    "on6TXjv4S8uh6xNDeYZXO/aK9ZzYS/ia1mqRwXR2uXqiI303zJNPf9DC2Sn7brZymPXY6G"
    "vWhntUacK6lYxn21jjWH/BTj+9/viBsFpeZkrUJXn+QgO4j3foRTKmxVM+NHlYFAJa2MEG"
    "Asx/zgX+KFlchQllnCrzhSXCNnIrdKyQ1S3BcvCjlUZhMno3YZGcmrj5MRuPtTRjBlp/CO"
    "/20SkuvjlJiE5M1DaPiI9GN7SS4T+VjN8f6LOZSsIPs0n5H+ipFVMlglpp3gahDy23RmJ3"
    "O1Qk4h/QZDTuMIDO2cGzOe+toZLRGPSWfRSGcRjjXVFnXMZGStkzokQLvmKliCpYFrvGtb"
    "U1/w3NNCX5T4e+YRZ0h/JzMp9w/iJjHN3KKWk1yyY3LP89NFs4efI18xOd+EDMSTk2AyX1"
    "9+ub58+671YzupP5+C+Gsr0+WnyxN+VPy2tNMfmE6k2IishYLFT87F/WV598UMD/SBXs2Q"
    "cOnakLuDufT02QD9D3bdV/xCJux47JmjXi+Vm9TrBTk8HHiAKLjOK46mFPyXBxo+Gdrr9Y"
    "L8H9xnT7LaVBBcGGPvkXj7B+gPz/F9QiHOEIwk700MJaRBuRCIGKYdbIceMA9GlgQcPTv+"
    "KHwy/qsYdSwuYAfN6ZE8YokHyo9aKJ82/CQBhM4HL/5c7DWxjNrFMrKVarEZMzas2IYlkY"
    "K2U7dxT7ohU7yu4bmdX+KuSc7wp8A2ZQOHoGsJcAiMYHngIOnbqoSIMKcWQROBDFJhfWHm"
    "96ChDVm6+2CzqQ1tnIgJ4LWR5diy1SMomCMXmZCjmks9UDDqA8fjPho6TwIADPHk9cAjAr"
    "F4gkfcQFtlGIuBbeTYZDxhUH8VwaC5FeHmLHsb/dkKbkJCgox1jO+t+CUnNyQDmfjpqQp0"
    "4RyIkcG3bvjauul9zOFn2pIjiJcJP9Afv727e4diSvThCxKfFbr5+vFjAHhNVnTVSYwGah"
    "io8dNAjVjtlZ3UMUcDp3UFZUc0g2wGy5UWrZSOhmxD+gYKt4KyiwKULAr3XrTmCFfRNyEt"
    "rkCW9+/+dZ8KwS8kII5nqufj7c0/QvL5rMS5fdM4qBVfNgU0pDdJn6snfSbDsJqpt1kbVI"
    "zsNWRvSrpuvPbTxM04liF/pkcMZpqvPs2lELs+08EoSZ6KTOnue+iJAgy2s8putxSbSTxa"
    "Va0MHJd0NQ98SfI0boJX4OOMpuO+roxTTEbIS4U88ciTQ551DGSCxZjI1U3kgHmwsJKV9Z"
    "Uv+xSTkf4LcPgI0jL0NEvI0QQ/v2p04msHtH2TDP1CTFLrKsMNlX+9FtjfO/Le8hbZZXe7"
    "xEJ7F6Bq+dNDphOXYVtm2nni9sI1ceSRAfHg9A+05/hojGdoxFwbcTjPDLsI+z62RhBZ4r"
    "/GaXrqXJDW3Iuu6joPNO6G3YGQ/BcC9V7vl14vQpS9HqTvjZi8gM2eKdxMW67kP4/k+roY"
    "PMi9Qy7BsGQvGh+oumtIFRS3SahFbHW0m+jmROUUzqImFHyZHO1x4sGJDfyXcCH9F2X/+c"
    "Fk9uLjKk3u3jZz98IvTW+NLM3VvF2J6wci2zyUtU6SbVQ+2WcnMwn9s7MkAX3ilE8+D3bX"
    "JK0FXrq7fCkPpKAvanW4LaHRD9Dts0paTyR0I0XfjpPPg3Zh6iLDd4HwA1W2Z0phvDDBPG"
    "h8xZEwWMkc8wN0KUyl8JKgbKUzdnx+APMFWHu9hQS29gN9VonrU8iBUHYqJhAXcJn1WNIm"
    "xUloYqqa7PJ6WiiT8lVtyld9EEADMxlNZt0WAxGBGez2tZBXiqmBOqSCBRKTS/DTBHi+WC"
    "NiT11ifyE0DZIyCQpRMA9Ju3KnQFlADMQQY+mTcK+DPK2ewEH08hdASexDefRFiBtdM4pc"
    "zEHnNY4OIFsXSfeJxcTPi4xNGQ5XezKQALMQrnmgAlv3euHVe70gCAQjqvudARMOnklt0B"
    "T3b8HGU87gctHptsF+kecRg1jVA1X8Ar37sGdElqTq9S4EHqe23PHBgz/QnuViZxzucI0u"
    "O8Gc70sqvy3epONCrMmCPdWum3+U7rItIKIfbkROFH9+z0iqy2zT2O42DZPTbnLad1a0xt"
    "+s1N/UXRY09dBf6AYJRCHwnFZ+R4LlRdkddXsBm07vUDX99SZ8gsnM+tW31YV4sDQCCRk2"
    "WJRN4enWZrT52ncobS10WLc8j6pzrD2PZaDpfP0dMZjcvNWVt80o0U5iSjCZDCaT1V5bL8"
    "dktTc7NeE+SBPOiNDeRwnE+aHZIMm4dEg2IH/FwyMmeVuWtPPYs1zB9xjzoyCnjENiH1LT"
    "uB+QwYarrFjsOobNznRQz7c02eFXFKYbyPEJtkbBuO0g/yCojpORgNCO8x4EdbqsHgR3od"
    "mBmG14QCccvIYg9xiNhOMFAdmp/0D3FJ2syEOnUO1PdB0dHAQ3JGigHA+EWtWhn/8lRgyG"
    "8wn3lQzQvWgJHlmafpnix+W986DSYBtR8hwxBOV+2tElpPgh2oup+ObFH9rpFeGxcvmBWX"
    "iZmjgywWJCtNohWhPmqjbMJWen/jEECS7j/K8MIJXa1JR9zGREv7Lopapf4XDXxq5QVHSy"
    "646cXtzM+b0Tx+o2QvS1cqfuCl2qu5JuVVfLt4pqfCfqd4engwXjXYDfI1Ook97RXsDYVk"
    "TCRQhdGSjqneFtVXOhBxp5Vmp4SACH7UxAfAD/CJeFecrz2KOQgALeGGdjApcRMoRi4pAf"
    "kLvVKKolHroE5hC02nzART6IqbJc3SloNfCnayXi9cMw40FX7EGDrdTfwJ9iM2hrl9EWVE"
    "ArgFuqQFoJvBU59lrRbBXpHQh0MsFDGQANw6iAi6D8OdobOZBBOwsCxCGu6fX2L5bhrSou"
    "80AHCkqJ55VJvhhNXDGRosC2JeAbR5RJ+AbpwuJPOa0Rob43y0dYCesQVWxPtPlZx7cY2F"
    "VL2GWwgdnt1ZRZvrVSP0bo0ujWZvPotsVfgUKpCRp7S2Ap/LNHOBSNyQJkcxSFmMyWtN1J"
    "kngZKMt/C0XBoOBKBpTUSXPsSixo17OQUnmMwXegIdyYo4G6+bhTQsDHnVwBQ1dawMLzcm"
    "iGgAtPTY6ZzKnJOidUu9gXPu5YZzoneTaY3N/a0els9vNvfIMWpZqBZLpR47ehqXzUOS8T"
    "Re6c50eRoa82wPmG+c7AsXDeYdWp/kLQTBOUJeOYt5SgJJuML8KC6pRDPBGnO30oJ0lnsp"
    "NDTmq4wgsprxmFEtY+uikgWWtlZXD75nF7n9laJ8aE9GbH7st37Grv+0rzGTC0i8uOSXt8"
    "PfU485ZZbUVV2nZ3LclQ0oTfh/tCUsbUscMtIsKsgiENvHW0p6rvhNtFPEyH8OfAhzwuP8"
    "OIVzC+icft0ne3O3a9UblZJiBXcQQjdw/C0hztsjpkXUI+3HkdUhPbrY6WePdEqJ9ltVP9"
    "hfY6XJwkQFq+KmFQRk8xxznQahuoal+sf30R1OubenB5JCbOlARV+iZTPlqw2BVd54HuQS"
    "oQbBr1ECfYs0ZBUpC47D5sb+XTMTlAb4lL/LBWoGrNLeZnrHxdvtAiK2/W7zeVLGz8yp/W"
    "Nn0WKvafrJ9llsKuQosEKrr7F+trRH6BBfw3Wfp1D1Q/m/p99m3/AnlEvB6iCsLCA75mgw"
    "GCHf6uKthqe2wygYqtDDYAPWHXsbMjwJVcJdOF9LEnfiqFk1A/xpmszcdWZGZSr09jZTHJ"
    "VpXua+rbMEZ+40Z+gmdwxppO0D7BYuL2L4jbY+EFjSdZqQsFhWVjlsZ4/J2jkzcn58dnJ5"
    "FGiVqKFMmi0qDkm6+NVhNMRl2vnA5iXIUalHjIqbm5pIpJXuHNdVXH26a5PD0tYy9PT/MN"
    "JvSZs4K3PdVr5BXfS4DfynGMVW97qW8c+Akl3eM/5PEpwmuV3ivkLWGZmHSBMEXvrz8J13"
    "XowCAqdemRUDhYBV1+vuHhWmjYip5Jf8TYI/p693HRRa70SkUrrcmEVzmA8ZPr8/m1d2bR"
    "tUnJVLuTN74xIZdJts1PtT1fSBuXikZDvBFDA2V7elRmUVtQ5cpX9hnHYOvquiZo6Y4E67"
    "hZWCnqK0RKnqIqB5Py30Qm8EgHC5VdImP2l2OgR33mchH0qHOQePfrMNcV4jUqry7QNxrC"
    "jRgaKF6zL3AnVXRN4MYVHGKQhTWCjkKg0QeSSlCGUobyAsQs/tdo2hYhC2Pxqtsipr4EDf"
    "EmWJoH18zh9jupPWpi9D57DE4RyzJ7YVeh4ZsERBWYvrKGbpuqtkan56xLDeTbNPm/hqRD"
    "+saVH1m/xsVPQuhaK+8xR+PEW0kcGU66nWbYteKzcadZlm33JVxJ6erpxF4pUp/mMyhiF1"
    "HENaO+MPx3RIifZ+Y2zFEUYgoroO16AXGVbvWEiAbjU9dmPhfhD+NTV5cpAJ+BhmxDeuNN"
    "l8B2lkUmflbAorBWYpLNVEvUqJbok28ZCKQgJUPRNw7ldQ7LoDxBlb+Sd7iA8kxs6OdBdV"
    "8ncptOBppTPYUobippthgY0jzo/SVHvNcMrm04MMSeqR58iBgMfliOH0zYrcrNGGNHT7oh"
    "fQPdiqNOkbWKS9G+KShF+2Yh7ub8J6tKeNGpMIrDYAZNzzkh9BHunJ5pBTsjjgZO7PXr5H"
    "pnJTc1NJQIBXFtfzpkMb60hi89ZJRoT/IEU0WbFJs5wbfq9f34f0uSLoM="
)
