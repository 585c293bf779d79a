"""The Snowflake crawler through the real connector (5.x) against the fake account
(tests/crawl/fakes/snowflake_server.py): login, the JSON result format, what a role may see."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack.processes import free_port
from pdp.crawl import CrawlError, open_crawler
from pdp.crawl.snowflake import SnowflakeCrawler
from pdp.objects.syncplan import Listing, RemoteColumn
from tests.crawl.fakes.snowflake_server import Account, Table, serve


@pytest.fixture
def account() -> Account:
    a = Account()
    a.databases = {
        "SALES": {
            "PUBLIC": {
                "ORDERS": Table("BASE TABLE", [("ID", "NUMBER", False), ("TOTAL", "NUMBER", True)]),
                "BIG": Table("VIEW", [("ID", "NUMBER", True)]),
                "TOTALS": Table("MATERIALIZED VIEW", [("S", "NUMBER", True)]),
                "RAW": Table("EXTERNAL TABLE", [("VALUE", "VARIANT", True)]),
                "LOG": Table("EVENT TABLE"),
                "HOURLY": Table("BASE TABLE", dynamic=True),
                "ICE": Table("BASE TABLE", iceberg=True),
            },
            "OPS": {},
        },
        "HR": {"PAY": {"SALARIES": Table("BASE TABLE", [("AMOUNT", "NUMBER", True)])}},
    }
    return a


OPENED: list[SnowflakeCrawler] = []


@pytest.fixture
def port(account: Account) -> Iterator[int]:
    with serve(account) as bound:
        yield bound
        while OPENED:
            OPENED.pop().close()


def crawler(port: int, password: str = "crawler-password", **endpoint: object) -> SnowflakeCrawler:
    where = {"account": "acme", "host": "127.0.0.1", "port": port, "protocol": "http"}
    made = open_crawler(
        "snowflake",
        {**where, "timeout": 5, **endpoint},
        {"user": "svc_crawler", "passwordEnv": "SF_PASSWORD"},
        {"SF_PASSWORD": password},
    )
    assert isinstance(made, SnowflakeCrawler)
    OPENED.append(made)
    return made


def names(listing: Listing) -> list[str]:
    assert listing.children is not None, listing.error
    return [child.name for child in listing.children]


def test_databases_come_from_show_databases(port, account):
    assert names(crawler(port).list(())) == ["HR", "SALES"]
    assert account.queries == ["SHOW DATABASES"]


def test_schemas_leave_out_information_schema(port, account):
    assert names(crawler(port).list(("SALES",))) == ["OPS", "PUBLIC"]
    assert account.violations == []


def test_tables_carry_their_type_and_columns(port, account):
    listing = crawler(port).list(("SALES", "PUBLIC"))
    assert listing.children is not None, listing.error
    tables = {t.name: t for t in listing.children}
    assert {n: t.remote_type for n, t in tables.items()} == {
        "BIG": "VIEW",
        "HOURLY": "DYNAMIC_TABLE",
        "ICE": "ICEBERG_TABLE",
        "LOG": "EVENT_TABLE",
        "ORDERS": "TABLE",
        "RAW": "EXTERNAL_TABLE",
        "TOTALS": "MATERIALIZED_VIEW",
    }
    assert tables["ORDERS"].columns == (
        RemoteColumn("ID", "NUMBER", False, 1),
        RemoteColumn("TOTAL", "NUMBER", True, 2),
    )
    assert account.violations == []


def test_one_schema_is_three_queries_whatever_its_number_of_tables(port, account):
    account.databases["SALES"]["WIDE"] = {f"T{i}": Table() for i in range(30)}
    listing = crawler(port).list(("SALES", "WIDE"))
    assert len(names(listing)) == 30
    assert [q.split(" FROM ")[1].split(" ")[0] for q in account.queries] == [
        '"SALES".INFORMATION_SCHEMA.SCHEMATA',
        '"SALES".INFORMATION_SCHEMA.TABLES',
        '"SALES".INFORMATION_SCHEMA.COLUMNS',
    ]


def test_rows_come_a_page_at_a_time(port, account):
    account.databases["SALES"]["WIDE"] = {
        "T": Table(columns=[(f"C{i}", "NUMBER", True) for i in range(11)])
    }
    listing = crawler(port, pageSize=3).list(("SALES", "WIDE"))
    assert listing.children is not None, listing.error
    assert [c.position for c in listing.children[0].columns or ()] == list(range(1, 12))


def test_one_login_serves_every_listing(port, account):
    c = crawler(port)
    c.list(())
    c.list(("SALES",))
    c.list(("SALES", "PUBLIC"))
    assert account.logins == 1


def test_a_second_crawl_sees_what_changed(port, account):
    c = crawler(port)
    c.list(("SALES", "PUBLIC"))
    public = account.databases["SALES"]["PUBLIC"]
    del public["BIG"]
    public["ORDERS"].columns.append(("REGION", "TEXT", True))
    public["RETURNS"] = Table()
    tables = {t.name: t for t in c.list(("SALES", "PUBLIC")).children or ()}
    assert "BIG" not in tables and "RETURNS" in tables
    assert [col.name for col in tables["ORDERS"].columns or ()] == ["ID", "TOTAL", "REGION"]


def test_a_database_the_role_may_not_use_is_a_failed_listing(port, account):
    c = crawler(port)
    account.hidden.add(("HR",))
    listing = c.list(("HR",))
    assert listing.children is None
    assert listing.error and "does not exist or not authorized" in listing.error


def test_a_schema_the_role_lost_is_a_failed_listing_not_an_empty_one(port, account):
    # INFORMATION_SCHEMA.TABLES would answer no rows; that must not mark the tables missing
    account.hidden.add(("HR", "PAY"))
    listing = crawler(port).list(("HR", "PAY"))
    assert listing.children is None
    assert listing.error and "not authorized" in listing.error


def test_exclusions_skip_databases_and_schemas(port):
    c = crawler(port, exclude=["hr", "sales/o*"])
    assert names(c.list(())) == ["SALES"]
    assert names(c.list(("SALES",))) == ["PUBLIC"]


def test_an_unreachable_account_is_a_failed_listing(port):
    listing = crawler(free_port(), timeout=2).list(())
    assert listing.children is None
    assert listing.error


def test_check_passes_with_good_credentials_and_role(port):
    checks = crawler(port, role="CRAWLER").check()
    assert [(c.name, c.ok) for c in checks] == [
        ("connect", True),
        ("role", True),
        ("list databases", True),
    ]
    assert "SVC_CRAWLER" in checks[0].detail


def test_check_names_a_wrong_password(port):
    checks = crawler(port, password="wrong").check()
    assert [(c.name, c.ok) for c in checks] == [("connect", False)]
    assert checks[0].detail == "acme: authentication failed"  # not the server's answer


def test_check_names_a_role_not_granted_to_the_user(port):
    checks = crawler(port, role="ACCOUNTADMIN").check()
    assert [(c.name, c.ok) for c in checks] == [("connect", False)]
    assert checks[0].detail == "acme: authentication failed"


def test_the_password_never_shows(port):
    c = crawler(port)
    assert "crawler-password" not in repr(vars(c))


@pytest.mark.parametrize(
    ("endpoint", "credentials", "message"),
    [
        ({}, {"user": "u", "passwordEnv": "P"}, "account"),
        ({"account": "a"}, {"user": "u"}, "passwordEnv"),
        ({"account": "a", "protocol": "ftp"}, {"user": "u", "passwordEnv": "P"}, "protocol"),
        ({"account": "a"}, {"user": "u", "password": "v", "passwordEnv": "P"}, "not both"),
    ],
)
def test_a_bad_configuration_raises_naming_the_field(endpoint, credentials, message):
    with pytest.raises(CrawlError, match=message):
        open_crawler("snowflake", endpoint, credentials, {"P": "p"})


# --- key-pair login: the key is a value (PEM text, as the admin API takes it) or a file ---------


def rsa_pem(password: str | None = None) -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()
    return key, text


def key_pair_crawler(port: int, credentials: dict[str, str]) -> SnowflakeCrawler:
    where = {"account": "acme", "host": "127.0.0.1", "port": port, "protocol": "http"}
    made = open_crawler(
        "snowflake", {**where, "timeout": 5}, {"user": "svc_crawler", **credentials}
    )
    assert isinstance(made, SnowflakeCrawler)
    OPENED.append(made)
    return made


@pytest.mark.parametrize("password", [None, "key pass phrase"])
def test_a_key_pair_given_as_pem_text_signs_in(port, account, password):
    key, text = rsa_pem(password)
    account.public_key = key.public_key()
    credentials = {"privateKey": text, **({"privateKeyPassword": password} if password else {})}
    checks = key_pair_crawler(port, credentials).check()
    assert [(c.name, c.ok) for c in checks] == [("connect", True), ("list databases", True)]
    assert account.jwt_logins == 1 and account.logins == 1


def test_a_key_pair_file_from_pdp_yaml_still_signs_in(port, account, tmp_path):
    key, text = rsa_pem()
    account.public_key = key.public_key()
    path = tmp_path / "rsa_key.p8"
    path.write_text(text)
    checks = key_pair_crawler(port, {"privateKeyFile": str(path)}).check()
    assert checks[0].ok, checks


def test_a_key_the_user_does_not_hold_is_refused(port, account):
    account.public_key = rsa_pem()[0].public_key()
    checks = key_pair_crawler(port, {"privateKey": rsa_pem()[1]}).check()
    assert [(c.name, c.ok) for c in checks] == [("connect", False)]
    assert checks[0].detail == "acme: authentication failed"
    assert account.jwt_logins >= 1 and account.logins == 0


def test_the_private_key_never_shows(port, account):
    _, text = rsa_pem("pass phrase")
    made = key_pair_crawler(port, {"privateKey": text, "privateKeyPassword": "pass phrase"})
    shown = repr(vars(made))
    assert "PRIVATE KEY" not in shown and "pass phrase" not in shown


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({"privateKey": "not a key"}, "credentials.privateKey: not a PEM private key"),
        (
            {"privateKey": rsa_pem("p")[1]},
            "credentials.privateKey: the private key is encrypted: give its password",
        ),
        (
            {"privateKey": rsa_pem()[1], "privateKeyPassword": "p"},
            "credentials.privateKey: the private key is not encrypted",
        ),
        (
            {"privateKey": rsa_pem("p")[1], "privateKeyPassword": "wrong"},
            "credentials.privateKey: not a PEM private key, or the wrong password",
        ),
        (
            {
                "privateKey": ec.generate_private_key(ec.SECP256R1())
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode()
            },
            "credentials.privateKey: an RSA private key is needed",
        ),
        ({"privateKey": rsa_pem()[1], "password": "p"}, "give a password or a key pair"),
    ],
)
def test_a_bad_private_key_is_named(credentials, message):
    with pytest.raises(CrawlError, match=message) as caught:
        open_crawler("snowflake", {"account": "a"}, {"user": "u", **credentials})
    for line in credentials["privateKey"].splitlines()[1:]:  # the key itself is never repeated
        assert line not in str(caught.value)
