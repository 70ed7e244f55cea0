"""The test PostgreSQL is real and each run gets a database of its own."""

import sqlalchemy as sa


def test_postgres_url_is_a_private_writable_database(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        database = connection.execute(sa.text("select current_database()")).scalar_one()
        connection.execute(sa.text("create table probe (id int primary key, note text)"))
        connection.execute(sa.text("insert into probe values (1, 'é,\"\n')"))
        stored = connection.execute(sa.text("select note from probe")).scalar_one()
        version = connection.execute(sa.text("show server_version_num")).scalar_one()
    engine.dispose()
    assert database.startswith("cp_test_")
    assert stored == 'é,"\n'
    assert int(version) >= 120000
