"""gwgevent.lib.db on a real MariaDB/MySQL server (see tests/servers.py for which one).

Each test works on its own tables (unique prefix) and drops them. The cooperation bar runs in
a monkey-patched subprocess (tests/coop_check.py); everything else runs unpatched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types

import gevent
import gevent.event
import pymysql
import pytest

from gwgevent.lib import db as dbmod
from gwgevent.lib.config import ConfigError
from gwgevent.lib.db import (Db, DbBuildError, DbConnectError, DbConnection, DbGoneAwayError,
                             DbPoolTimeout, DbQueryError, DbTransactionError, Query)
from servers import mariadb_server, uniq  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.timeout(60)

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def db(mariadb_server):  # noqa: F811
    s = mariadb_server
    conn = DbConnection(s.host, s.port, s.user, s.password, s.database, pool_size=5,
                        wait_timeout=2.0, name="t")
    yield conn
    conn.close()


@pytest.fixture
def admin(mariadb_server):  # noqa: F811
    """A second, raw session (creating tables, KILL, checking from outside)."""
    conn = mariadb_server.connect()
    yield conn
    conn.close()


def _x(admin, sql, args=None):
    with admin.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


@pytest.fixture
def tables(admin):
    """(users, orders) tables with a few rows; dropped afterwards."""
    users, orders = uniq("gwt") + "_users", uniq("gwt") + "_orders"
    _x(admin, "CREATE TABLE `%s` (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL,"
              " age INT, status TINYINT NOT NULL DEFAULT 1, note VARCHAR(200) NULL,"
              " UNIQUE KEY (name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" % users)
    _x(admin, "CREATE TABLE `%s` (id INT AUTO_INCREMENT PRIMARY KEY, uid INT NOT NULL,"
              " amount INT NOT NULL) ENGINE=InnoDB" % orders)
    _x(admin, "INSERT INTO `%s` (name, age, status, note) VALUES ('alice', 30, 1, 'a'),"
              " ('bob', 25, 1, 'b'), ('carol', 35, 0, 'c'), ('dave', 25, 1, NULL)" % users)
    _x(admin, "INSERT INTO `%s` (uid, amount) VALUES (1, 10), (1, 20), (2, 5), (99, 7)" % orders)
    try:
        yield users, orders
    finally:
        _x(admin, "DROP TABLE IF EXISTS `%s`, `%s`" % (users, orders))


def names(rows):
    return [r["name"] for r in rows]


# ------------------------------------------------------------------------------ select/where

def test_select_where_positional_named_and_bind(db, tables):
    u, _ = tables
    rows = db.select("id, name").from_(u).where("age = ? AND status = %s", 25, 1) \
        .order_by(["id"]).query()
    assert names(rows) == ["bob", "dave"] and set(rows[0]) == {"id", "name"}
    rows = db.select("name").from_(u).where("age > :min").bind_values({"min": 26}) \
        .order_by_asc(["name"]).query()
    assert names(rows) == ["alice", "carol"]
    rows = db.select("name").from_(u).where("name = :n").bind_value(":n", "carol").query()
    assert names(rows) == ["carol"]
    # ? inside a literal is not a placeholder; % in a LIKE pattern survives
    assert db.select("name").from_(u).where("name LIKE 'a%' AND '?' = ?", "?").column() == ["alice"]


def test_select_columns_list_alias_dict_star_functions(db, tables):
    u, _ = tables
    row = db.select(["name AS n", "age a", u + ".status"]).from_(u).where("id = ?", 1).row()
    assert row == {"n": "alice", "a": 30, "status": 1}
    row = db.select({"COUNT(*)": "cnt", "MAX(age)": "oldest"}).from_(u).row()
    assert row == {"cnt": 4, "oldest": 35}
    row = db.select("COUNT(*) AS c, MIN(" + u + ".age) youngest").from_(u).row()
    assert row == {"c": 4, "youngest": 25}
    q = db.select("x.*").from_(u + " AS x").where("x.id = ?", 2)
    assert str(q) == "SELECT `x`.* FROM `%s` AS `x` WHERE `x`.`id` = ?" % u
    assert q.row()["name"] == "bob"
    assert db.from_(u).where("id = 3").row()["name"] == "carol"   # SELECT * shortcut
    assert db.select("NOW() AS now, NULL AS nothing").row()["nothing"] is None


def test_where_dict_list_and_or_where(db, tables):
    u, _ = tables
    q = db.select("name").from_(u)
    assert q.where({"age": 25, "note": None}).column() == ["dave"]
    assert db.select("name").from_(u).where({"name": ["alice", "carol", "zed"]}) \
        .order_by("name").column() == ["alice", "carol"]
    assert db.select("name").from_(u).where({"name": []}).column() == []
    assert db.select("name").from_(u).where({"age > ?": 29, "status": 1}).column() == ["alice"]
    assert db.select("name").from_(u).where({"age BETWEEN ? AND ?": (26, 40)}) \
        .order_by("name").column() == ["alice", "carol"]
    assert db.select("name").from_(u).where(["status = 1", ("age < ?", 30)]) \
        .order_by("name").column() == ["bob", "dave"]
    rows = db.select("name").from_(u).where("age = ?", 35).or_where("name = ?", "bob") \
        .order_by(["name"]).column()
    assert rows == ["bob", "carol"]
    rows = db.select("name").from_(u).where({"name": "zed"}).or_where({"age": 30}).column()
    assert rows == ["alice"]
    # a condition containing OR is kept together when ANDed with another one
    q = db.select("name").from_(u).where("name = 'alice' OR name = 'bob'").where("age = 25")
    assert q.column() == ["bob"]
    with pytest.raises(DbBuildError):
        db.select("name").from_(u).where({"age > 1": 5})       # value without placeholder
    with pytest.raises(DbBuildError):
        db.select("name").from_(u).where({"a": 1}, 2)


def test_joins(db, tables):
    u, o = tables
    rows = db.select(["u.name", "o.amount"]).from_(u + " u").inner_join(o + " o", "u.id = o.uid") \
        .order_by(["o.amount"]).query()
    assert [(r["name"], r["amount"]) for r in rows] == [("bob", 5), ("alice", 10), ("alice", 20)]
    rows = db.select("u.name, o.amount").from_(u + " AS u").left_join(o + " AS o", "o.uid = u.id") \
        .where("o.id IS NULL").order_by("u.name").column()
    assert rows == ["carol", "dave"]
    rows = db.select("o.amount, u.name").from_(u + " u").right_join(o + " o", "ON o.uid = u.id") \
        .where("u.id IS NULL").query()
    assert rows == [{"amount": 7, "name": None}]
    rows = db.select("u.name").from_(u + " u").join(o + " o", "u.id = o.uid AND o.amount > ?",
                                                   "inner", 15).column()
    assert rows == ["alice"]
    q = db.select("COUNT(*)").from_(u + " a").join(u + " b", "USING (id)")
    assert "JOIN `%s` AS `b` USING (id)" % u in str(q) and q.single() == 4
    with pytest.raises(DbBuildError):
        db.select("*").inner_join(o, "x = y")                    # no from
    with pytest.raises(DbBuildError):
        db.select("*").from_(u).join(o, "1", "LEFT; DROP")


def test_group_by_having_or_having(db, tables):
    u, o = tables
    rows = db.select("age, COUNT(*) AS n").from_(u).group_by(["age"]).having("n > ?", 1).query()
    assert rows == [{"age": 25, "n": 2}]
    rows = db.select("age, COUNT(*) AS n").from_(u).group_by("age").having("n > 1") \
        .or_having("age = ?", 35).order_by("age").query()
    assert rows == [{"age": 25, "n": 2}, {"age": 35, "n": 1}]
    rows = db.select("uid, SUM(amount) AS total").from_(o).group_by(["uid"]) \
        .having({"total >= ?": 25}).query()
    assert rows == [{"uid": 1, "total": 30}]


def test_order_by_variants(db, tables):
    u, _ = tables
    base = lambda: db.select("name").from_(u)                      # noqa: E731
    assert base().order_by(["age DESC", "name"]).column() == ["carol", "alice", "bob", "dave"]
    assert base().order_by_asc(["age", "name"]).column() == ["bob", "dave", "alice", "carol"]
    assert base().order_by_asc(["id"], False).column() == ["dave", "carol", "bob", "alice"]
    assert base().order_by_desc(["id"]).column() == ["dave", "carol", "bob", "alice"]
    assert base().order_by("FIELD(name, 'dave', 'bob') DESC, name").column()[:2] == \
        ["bob", "dave"]


def test_limit_offset_page_paging(db, tables):
    u, _ = tables
    base = lambda: db.select("id").from_(u).order_by("id")        # noqa: E731
    assert base().limit(2).column() == [1, 2]
    assert base().limit(2).offset(1).column() == [2, 3]
    assert base().offset(1).column() == [1, 2, 3, 4]               # offset needs a limit (PHP)
    q = base().set_paging(3)
    assert q.get_paging() == 3
    assert q.page(1).column() == [1, 2, 3]
    assert q.page(2).column() == [4]
    assert base().page(1).column() == [1, 2, 3, 4]                 # default paging 10
    assert base().limit(1).page(0).column() == [1, 2, 3, 4]        # page <= 0 clears


def test_flags(db, tables):
    u, _ = tables
    assert db.select("age").from_(u).distinct().order_by("age").column() == [25, 30, 35]
    q = db.select("age").from_(u).distinct().distinct(False)
    assert "DISTINCT" not in str(q)
    with db.transaction():
        rows = db.select("name").from_(u).calc_found_rows().order_by("id").limit(1).column()
        assert rows == ["alice"] and db.single("SELECT FOUND_ROWS()") == 4
        q = db.select("name").from_(u).where("id = ?", 1).for_update()
        assert str(q).endswith("FOR UPDATE") and q.column() == ["alice"]
    q = db.select("id").from_(u).high_priority().straight_join().small_result().no_cache() \
        .buffer_result().order_by("id").limit(1)
    assert str(q).startswith("SELECT HIGH_PRIORITY STRAIGHT_JOIN SQL_SMALL_RESULT SQL_NO_CACHE "
                             "SQL_BUFFER_RESULT `id`")
    assert q.column() == [1]
    assert db.select("id").from_(u).big_result().cache().limit(1).column()
    assert db.insert(u).cols({"name": "alice"}).ignore().query() is None   # duplicate ignored
    assert db.update(u).low_priority().set("age", "age").where("id = 1").query() == 0
    assert db.delete(u).quick().low_priority().where("id = ?", 4).query() == 1
    assert str(db.insert(u).delayed().cols({"name": "x"})).startswith("INSERT DELAYED INTO")


def test_union_and_sub_select(db, tables):
    u, o = tables
    q = db.select("name AS v").from_(u).where("age = ?", 30).union_all() \
        .select("amount").from_(o).where("amount < ?", 8).union() \
        .select("name").from_(u).where("age = ?", 30)
    assert sorted(str(v) for v in q.column()) == ["5", "7", "alice"]
    assert " UNION ALL " in str(q) and " UNION SELECT" in str(q)
    sub = db.select("uid, SUM(amount) AS total").from_(o).group_by("uid").having("total > ?", 6)
    rows = db.select("s.uid, s.total").from_sub_select(sub, "s").order_by("s.uid").query()
    assert rows == [{"uid": 1, "total": 30}, {"uid": 99, "total": 7}]
    assert db.select("COUNT(*)").from_raw("`%s` AS u2 WHERE u2.age > ?" % u, 26).single() == 2


# ------------------------------------------------------------------------------ writes

def test_insert_cols_returns_last_insert_id(db, tables):
    u, _ = tables
    new_id = db.insert(u).cols({"name": "erin", "age": 41}).query()
    assert new_id == 5 and db.last_insert_id() == 5 and db.lastInsertId() == 5
    assert db.select("age").from_(u).where("id = ?", new_id).single() == 41
    new_id = db.insert(u).cols(["name", "age"]).bind_values({"name": "fred", "age": 7}).query()
    assert new_id == 6
    new_id = db.insert(u).col("name", "gina").set("age", "3 * 4").set("note", None).query()
    assert db.row("SELECT age, note FROM `%s` WHERE id = ?" % u, [new_id]) == \
        {"age": 12, "note": None}
    assert db.insert(u).into(u).cols({"name": "hank"}).query() == 8
    # raw INSERT through query(): last insert id as well
    assert db.query("INSERT INTO `%s` (name) VALUES (?)" % u, ["ivy"]) == 9


def test_update_and_delete_return_affected_rows(db, tables):
    u, _ = tables
    assert db.update(u).cols({"status": 5}).where("age = ?", 25).query() == 2
    assert db.select("name").from_(u).where({"status": 5}).order_by("id").column() == \
        ["bob", "dave"]
    assert db.update(u).cols(["note"]).bind_value("note", "z").where("id = 1").query() == 1
    assert db.update(u).set("age", "age + 1").where("status = ?", 5).order_by("id DESC") \
        .limit(1).query() == 1
    assert db.single("SELECT age FROM `%s` WHERE name = 'dave'" % u) == 26
    assert db.update(u).table(u).cols({"note": "y"}).where({"id": 2}).query() == 1
    assert db.update(u).cols({"note": "y"}).where({"id": 2}).query() == 0   # unchanged
    assert db.delete(u).where({"status": 5}).limit(1).query() == 1
    assert db.delete(u).where("age < ?", 100).query() == 3
    assert db.single("SELECT COUNT(*) FROM `%s`" % u) == 0
    with pytest.raises(DbBuildError):
        db.update(u).where("id = 1").query()                     # nothing to set


def test_raw_terminals_and_return_conventions(db, tables):
    u, _ = tables
    assert names(db.query("SELECT name FROM `%s` WHERE age = ? ORDER BY id" % u, [25])) == \
        ["bob", "dave"]
    assert db.row("SELECT * FROM `%s` WHERE name = :n" % u, {"n": "carol"})["age"] == 35
    assert db.row("SELECT * FROM `%s` WHERE id = %%s" % u, (999,)) is None
    assert db.column("SELECT id FROM `%s` ORDER BY id" % u) == [1, 2, 3, 4]
    assert db.column("SELECT id FROM `%s` WHERE 0" % u) == []
    assert db.single("SELECT name FROM `%s` WHERE id = %%(id)s" % u, {"id": 2}) == "bob"
    assert db.single("SELECT id FROM `%s` WHERE 0" % u) is False
    assert db.single("SELECT note FROM `%s` WHERE id = 4" % u) is None      # NULL, not False
    assert db.single("SELECT 'a%b' LIKE 'a%'") == 1          # no params: SQL sent as written
    assert u in [list(r.values())[0] for r in db.query("SHOW TABLES")]
    assert db.query("REPLACE INTO `%s` (id, name) VALUES (1, 'al')" % u) == 2
    assert db.query("SET @gw_x = 1") is None
    assert db.query("DO 1") is None
    # raw SQL through a builder terminal (PHP: $db->query($sql) on the same object)
    assert db.select("ignored").query("SELECT ? AS v", [7]) == [{"v": 7}]
    assert db.select().row("SELECT 1 AS a") == {"a": 1}
    assert db.select().column("SELECT 1 UNION SELECT 2") == [1, 2]
    assert db.select().single("SELECT :v", {"v": "x"}) == "x"
    assert db.ping() is True
    with pytest.raises(DbBuildError):
        db.query("SELECT ?", 5)                              # params must be a list or dict
    with pytest.raises(DbBuildError):
        db.query("SELECT ?, ?", [1])


def test_last_sql_and_params(db, tables):
    u, _ = tables
    db.select("name").from_(u).where("age > ?", 26).where("name LIKE 'a%'").column()
    assert db.last_sql() == "SELECT `name` FROM `%s` WHERE (age > ?) AND (name LIKE 'a%%')" % u
    assert db.lastSQL() == db.last_sql() and db.last_params() == [26]
    db.single("SELECT 1")
    assert db.last_sql() == "SELECT 1" and db.last_params() is None


def test_values_are_bound_never_formatted(db, tables):
    """Quotes, comments and placeholder look-alikes are stored and matched literally."""
    u, _ = tables
    evil = ["x' OR 1=1 -- ", "'; DROP TABLE `%s`; -- " % u, "\\' OR ''='", "%s", "?", ":name",
            "%(name)s", "100%", "a\"b`c", "\u4e2d\u6587 \U0001F600"]
    ids = [db.insert(u).cols({"name": v}).query() for v in evil]
    assert db.single("SELECT COUNT(*) FROM `%s`" % u) == 4 + len(evil)
    for value, new_id in zip(evil, ids):
        rows = db.select("id, name").from_(u).where("name = ?", value).query()
        assert rows == [{"id": new_id, "name": value}], value
        assert db.select("id").from_(u).where({"name": value}).column() == [new_id]
        assert db.select("id").from_(u).where("name = :v").bind_values({"v": value}).column() \
            == [new_id]
        assert db.column("SELECT id FROM `%s` WHERE name = ?" % u, [value]) == [new_id]
        assert db.update(u).cols({"note": value}).where("id = ?", new_id).query() == 1
        assert db.single("SELECT note FROM `%s` WHERE id = ?" % u, [new_id]) == value
    # the classic attempt matches nothing and the table is still there
    assert db.select("*").from_(u).where("name = ?", "nobody' OR '1'='1").query() == []
    assert db.select("*").from_(u).where("id = ?", "1 OR 1=1").query() == \
        db.select("*").from_(u).where("id = 1").query()
    assert db.single("SELECT COUNT(*) FROM `%s`" % u) == 4 + len(evil)


def test_errors_carry_sql_params_and_pymysql_class(db, tables):
    u, _ = tables
    with pytest.raises(DbQueryError) as ei:
        db.select("nope").from_(u).where("name = ?", "bob").query()
    err = ei.value
    msg = str(err)
    assert "Db 't'" in msg and "%s:%d" % (db.host, db.port) in msg
    assert "SELECT `nope` FROM `%s` WHERE name = ?" % u in msg and "'bob'" in msg
    assert err.errno == 1054 and err.args[0] == 1054 and err.params == ("bob",)
    assert isinstance(err, pymysql.err.OperationalError) or isinstance(err, pymysql.MySQLError)
    with pytest.raises(pymysql.err.IntegrityError) as ei:
        db.insert(u).cols({"name": "alice"}).query()
    assert isinstance(ei.value, DbQueryError) and ei.value.errno == 1062
    assert "Duplicate entry" in str(ei.value) and "INSERT INTO `%s`" % u in str(ei.value)
    with pytest.raises(pymysql.err.ProgrammingError):
        db.query("SELEC 1")
    with pytest.raises(DbBuildError, match="bind_values"):
        db.select("*").from_(u).where("id = :id").query()
    with pytest.raises(DbBuildError, match="placeholder"):
        db.select("*").from_(u).where("id = ? OR id = ?", 1).query()
    assert db.stats()["in_use"] == 0 and db.stats()["idle"] >= 1    # connection kept


# ------------------------------------------------------------------------------ transactions

def test_transaction_commit_and_rollback(db, tables, admin):
    u, _ = tables
    db.begin()
    assert db.in_transaction()
    db.insert(u).cols({"name": "t1"}).query()
    assert _x(admin, "SELECT COUNT(*) FROM `%s` WHERE name = 't1'" % u)[0][0] == 0  # not visible
    db.commit()
    assert not db.in_transaction()
    assert _x(admin, "SELECT COUNT(*) FROM `%s` WHERE name = 't1'" % u)[0][0] == 1
    db.beginTrans()
    db.insert(u).cols({"name": "t2"}).query()
    assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 't2'" % u) == 1   # own tx sees it
    assert db.rollBackTrans() is True
    assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 't2'" % u) == 0
    assert db.rollback() is False                        # no transaction: no-op like PHP
    with pytest.raises(DbTransactionError, match="no open transaction"):
        db.commitTrans()
    assert db.stats()["pinned"] == 0


def test_transaction_context_manager(db, tables):
    u, _ = tables
    with db.transaction() as tx:
        assert tx is db
        db.insert(u).cols({"name": "cm1"}).query()
    assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'cm1'" % u) == 1
    with pytest.raises(ZeroDivisionError):
        with db.transaction():
            db.insert(u).cols({"name": "cm2"}).query()
            1 / 0
    assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'cm2'" % u) == 0
    with pytest.raises(DbTransactionError, match="nested"):
        with db.transaction():
            with db.transaction():
                pass
    assert not db.in_transaction()
    # an SQL error inside rolls the transaction back (PHP semantics); swallowing it is reported
    with pytest.raises(DbTransactionError, match="rolled back after an error"):
        with db.transaction():
            db.insert(u).cols({"name": "cm3"}).query()
            with pytest.raises(pymysql.err.IntegrityError, match="rolled back"):
                db.insert(u).cols({"name": "alice"}).query()
    assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'cm3'" % u) == 0
    assert db.stats() == {"size": 5, "idle": db.stats()["idle"], "in_use": 0, "pinned": 0}


def test_transaction_pins_one_connection_per_greenlet(db, tables):
    u, _ = tables
    seen = {}

    def tx_worker():
        with db.transaction():
            seen["tx_id"] = db.single("SELECT CONNECTION_ID()")
            db.insert(u).cols({"name": "pinned"}).query()
            gevent.sleep(0.05)
            seen["tx_again"] = db.single("SELECT CONNECTION_ID()")

    def other():
        gevent.sleep(0.01)
        seen["other_id"] = db.single("SELECT CONNECTION_ID()")
        seen["other_sees"] = db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'pinned'" % u)
        seen["other_in_tx"] = db.in_transaction()

    gevent.joinall([gevent.spawn(tx_worker), gevent.spawn(other)], raise_error=True)
    assert seen["tx_id"] == seen["tx_again"] != seen["other_id"]
    assert seen["other_sees"] == 0 and seen["other_in_tx"] is False
    assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'pinned'" % u) == 1


def test_dead_greenlet_transaction_is_reaped(mariadb_server, tables):  # noqa: F811
    u, _ = tables
    s = mariadb_server
    db = DbConnection(s.host, s.port, s.user, s.password, s.database, pool_size=1,
                      wait_timeout=1.0)
    try:
        def forgetful():
            db.begin()
            db.insert(u).cols({"name": "forgotten"}).query()   # never committed

        gevent.spawn(forgetful).join()
        assert db.stats()["pinned"] == 1
        assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'forgotten'" % u) == 0
        assert db.stats()["pinned"] == 0
    finally:
        db.close()


# ------------------------------------------------------------------------------ gone away

def test_gone_away_is_retried_transparently(mariadb_server, tables, admin):  # noqa: F811
    s = mariadb_server
    db = DbConnection(s.host, s.port, s.user, s.password, s.database, pool_size=1)
    try:
        first = db.single("SELECT CONNECTION_ID()")
        _x(admin, "KILL %d" % first)                       # server side, from another session
        time.sleep(0.05)
        second = db.single("SELECT CONNECTION_ID()")       # no error
        assert second != first
        # PyMySQL InterfaceError(0) on a socket closed under it is handled the same way
        db._pool._idle[0]._force_close()
        third = db.single("SELECT CONNECTION_ID()")
        assert third not in (first, second)
        # builder path too
        _x(admin, "KILL %d" % third)
        time.sleep(0.05)
        assert db.select("COUNT(*)").from_(tables[0]).single() == 4
        assert db.stats()["in_use"] == 0
    finally:
        db.close()


def test_gone_away_inside_transaction_raises_and_rolls_back(mariadb_server, tables,  # noqa: F811
                                                            admin):
    u, _ = tables
    s = mariadb_server
    db = DbConnection(s.host, s.port, s.user, s.password, s.database, pool_size=2, name="ga")
    try:
        db.begin()
        db.insert(u).cols({"name": "lost"}).query()
        _x(admin, "KILL %d" % db.single("SELECT CONNECTION_ID()"))
        time.sleep(0.05)
        with pytest.raises(DbGoneAwayError, match="inside a transaction") as ei:
            db.update(u).cols({"age": 1}).where({"name": "lost"}).query()
        assert isinstance(ei.value, pymysql.MySQLError) and ei.value.errno in (2013, 2006, 0, 1927)
        assert not db.in_transaction() and db.stats()["pinned"] == 0
        assert db.single("SELECT COUNT(*) FROM `%s` WHERE name = 'lost'" % u) == 0
        with pytest.raises(DbTransactionError, match="rolled back"):
            db.commit()
        with pytest.raises(ZeroDivisionError):     # the context manager path
            with db.transaction():
                _x(admin, "KILL %d" % db.single("SELECT CONNECTION_ID()"))
                time.sleep(0.05)
                try:
                    db.single("SELECT 1")
                except DbGoneAwayError:
                    1 / 0
        assert db.single("SELECT 1") == 1 and db.stats()["in_use"] == 0
    finally:
        db.close()


# ------------------------------------------------------------------------------ concurrency

def test_concurrent_builders_do_not_share_state(db, tables):
    """Two greenlets interleave their call chains step by step; each gets its own query."""
    u, _ = tables
    out = {}

    def chain(key, age, name):
        q = db.select("name")
        gevent.sleep(0)
        q = q.from_(u)
        gevent.sleep(0)
        q = q.where("age = ?", age)
        gevent.sleep(0)
        q = q.where({"name": name})
        gevent.sleep(0)
        out[key] = (q.column(), db.last_sql())

    gevent.joinall([gevent.spawn(chain, "a", 30, "alice"), gevent.spawn(chain, "b", 25, "dave")],
                   raise_error=True)
    assert out["a"][0] == ["alice"] and out["b"][0] == ["dave"]
    assert "age = ?" in out["a"][1] and out["a"][1] == out["b"][1]
    assert isinstance(db.select("a"), Query) and db.select("a") is not db.select("a")


def test_pool_is_bounded_with_clear_timeout(mariadb_server):  # noqa: F811
    s = mariadb_server
    db = DbConnection(s.host, s.port, s.user, s.password, s.database, pool_size=1,
                      wait_timeout=0.2, name="tiny")
    holder_done = gevent.event.Event()

    def holder():
        with db.transaction():
            holder_done.wait(2)

    g = gevent.spawn(holder)
    gevent.sleep(0.05)
    t0 = time.monotonic()
    with pytest.raises(DbPoolTimeout, match=r"Db 'tiny' .*pool of 1 after waiting 0.2 s"):
        db.single("SELECT 1")
    assert 0.15 < time.monotonic() - t0 < 1.5
    holder_done.set()
    g.join(2)
    assert db.single("SELECT 1") == 1
    db.close()


def test_ssl_disabled_unless_configured(db):
    raw = db._connect()
    try:
        assert raw.ssl is False and getattr(raw, "ctx", None) is None
    finally:
        raw.close()
    import inspect
    assert "ssl_disabled" in inspect.signature(pymysql.connections.Connection.__init__).parameters


def test_connect_cost_with_and_without_tls_attempt(mariadb_server, db):  # noqa: F811
    """Why ssl_disabled=True: PyMySQL's default (TLS 'preferred') builds an SSL context and
    loads the CA bundle on every connect, blocking the hub; the helper's connect does not."""
    s = mariadb_server

    def avg_ms(fn, n=10):
        t0 = time.perf_counter()
        for _ in range(n):
            fn().close()
        return (time.perf_counter() - t0) / n * 1000

    helper = avg_ms(db._connect)
    default = avg_ms(lambda: pymysql.connect(host=s.host, port=s.port, user=s.user,
                                             password=s.password, database=s.database))
    print("\nconnect: helper (ssl_disabled=True) %.2f ms, PyMySQL default %.2f ms"
          % (helper, default))
    assert helper < 20


def test_tls_configured_is_attempted(mariadb_server):  # noqa: F811
    """ssl=True makes PyMySQL require TLS (one SSLContext built per DbConnection)."""
    s = mariadb_server
    tls = DbConnection(s.host, s.port, s.user, s.password, s.database, ssl=True, name="tls")
    assert tls._ssl_ctx is not None
    try:
        cipher = tls.row("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cipher["Value"]                              # server has TLS: encrypted
    except DbConnectError as exc:                           # server without TLS: clear error
        assert "Db 'tls'" in str(exc) and "SSL" in str(exc)
    finally:
        tls.close()
    with pytest.raises(ConfigError):
        DbConnection(s.host, s.port, s.user, s.password, s.database, ssl="yes")


def test_camelcase_aliases(db, tables):
    u, o = tables
    rows = db.select("u.name, SUM(o.amount) AS total").from_(u + " u") \
        .innerJoin(o + " o", "o.uid = u.id").where("u.status = :s").orWhere("u.id = ?", 99) \
        .groupBy(["u.name"]).having("total > 0").orHaving("total < 0") \
        .orderByDESC(["total"]).bindValues({"s": 1}).setPaging(1).page(1).query()
    assert rows == [{"name": "alice", "total": 30}]
    assert db.select("name").from_(u).leftJoin(o, "uid = " + u + ".id").orderByASC(["name"]) \
        .limit(1).column() == ["alice"]
    assert getattr(db.select("name"), "from")(u).forUpdate(False).bindValue("x", 1) \
        .where("id = :x").single() == "alice"
    assert db.select(u + ".id").from_(u).rightJoin(o, "uid = " + u + ".id").calcFoundRows() \
        .noCache().straightJoin().highPriority().smallResult().bigResult().bufferResult() \
        .unionAll().select("1").column() is not None
    db.closeConnection()
    assert db.single("SELECT 1") == 1
    for name in ("beginTrans", "commitTrans", "rollBackTrans", "lastInsertId", "lastSQL",
                 "closeConnection", "inTransaction"):
        assert callable(getattr(db, name))
    for name in ("innerJoin", "leftJoin", "rightJoin", "orWhere", "groupBy", "orHaving",
                 "orderBy", "orderByASC", "orderByDESC", "setPaging", "getPaging", "bindValues",
                 "bindValue", "fromRaw", "fromSubSelect", "lowPriority"):
        assert callable(getattr(Query, name))
    assert Db.closeAll == Db.close_all


# ------------------------------------------------------------------------------ Db registry

@pytest.fixture
def clean_db_registry():
    saved = (dict(Db._registry._dicts), list(Db._registry._objects))
    Db.close_all()
    yield
    Db.close_all()
    Db._registry._dicts.clear()
    Db._registry._dicts.update(saved[0])
    Db._registry._objects[:] = saved[1]


def test_db_instance_from_configure_module_and_env(mariadb_server, clean_db_registry,  # noqa: F811
                                                   monkeypatch):
    s = mariadb_server
    name_a, name_b, name_c = uniq("a"), uniq("b"), uniq("c")
    Db.configure({name_a: {"host": s.host, "port": s.port, "user": s.user,
                           "password": s.password, "dbname": s.database, "charset": "utf8mb4",
                           "pool_size": 3}})
    a = Db.instance(name_a)
    assert a is Db.instance(name_a) and a.name == name_a and a.stats()["size"] == 3
    assert a.single("SELECT DATABASE()") == s.database
    assert a.single("SELECT @@character_set_client") == "utf8mb4"
    Db.close(name_a)
    a2 = Db.instance(name_a)
    assert a2 is not a and a2.single("SELECT 1") == 1

    config_module = types.SimpleNamespace(**{name_b: {"url": s.url, "pool_size": 4}})
    Db.configure(config_module)
    b = Db.instance(name_b)
    assert b.stats()["size"] == 4 and b.single("SELECT 2") == 2

    monkeypatch.setenv("GW_DB_%s_URL" % name_c.upper(), s.url + "?charset=utf8mb4&pool_size=2")
    c = Db.instance(name_c)
    assert c.stats()["size"] == 2 and c.single("SELECT 3") == 3
    assert Db.settings(name_c)["port"] == s.port
    Db.closeAll()
    assert Db.instance(name_c) is not c

    with pytest.raises(ConfigError, match=r"GW_DB_NOPE_XYZ_URL"):
        Db.instance("nope-xyz")
    Db.configure({"badkey": {"host": "h", "dbnmae": "typo"}})
    with pytest.raises(ConfigError, match="dbnmae"):
        Db.instance("badkey")
    with pytest.raises(ConfigError, match="scheme"):
        Db.configure(badurl="postgres://x/y")
        Db.instance("badurl")


def test_connect_error_is_clear(clean_db_registry):
    Db.configure(down={"host": "127.0.0.1", "port": 1, "user": "someone", "dbname": "nodb",
                       "connect_timeout": 2})
    with pytest.raises(DbConnectError) as ei:
        Db.instance("down").query("SELECT 1")
    msg = str(ei.value)
    assert "Db 'down'" in msg and "127.0.0.1:1" in msg and "'someone'" in msg and "nodb" in msg
    assert "Connection refused" in msg or "2003" in msg
    assert Db.instance("down").stats()["in_use"] == 0


def test_fork_builds_a_new_pool_and_leaves_the_parent_alone(db, mariadb_server,  # noqa: F811
                                                            clean_db_registry):
    Db.configure(forky=mariadb_server.url)
    shared = Db.instance("forky")
    parent_id = shared.single("SELECT CONNECTION_ID()")
    parent_db_id = db.single("SELECT CONNECTION_ID()")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child
        code = 1
        try:
            os.close(r)
            inst = Db.instance("forky")
            child_ids = [inst.single("SELECT CONNECTION_ID()"),
                         db.single("SELECT CONNECTION_ID()")]
            os.write(w, json.dumps({"new_instance": inst is not shared,
                                    "ids": child_ids}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    data = json.loads(os.read(r, 4096).decode() or "{}")
    os.close(r)
    assert os.WEXITSTATUS(status) == 0, data
    assert data["new_instance"] is True
    assert parent_id not in data["ids"] and parent_db_id not in data["ids"]
    # the parent's pooled sessions were not closed by the child (no COM_QUIT sent)
    assert shared.single("SELECT CONNECTION_ID()") == parent_id
    assert db.single("SELECT CONNECTION_ID()") == parent_db_id


# ------------------------------------------------------------------------------ cooperation

def test_cooperation_50_sleeps_in_parallel(mariadb_server):  # noqa: F811
    """Monkey-patched subprocess: 50 greenlets x SELECT SLEEP(0.2) with pool 50 < 0.5 s."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "coop_check.py"), "mysql",
                          mariadb_server.url, "50", "0.2"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print("\nmysql cooperation: 50 x SELECT SLEEP(0.2): cold pool %.3f s, warm pool %.3f s "
          "(serial would be %.1f s)" % (result["cold"], result["warm"], result["serial"]))
    assert result["connections"] == 50
    assert result["cold"] < 0.5 and result["warm"] < 0.5


def test_module_imports_are_not_shadowed():
    import redis as real_redis
    assert "site-packages" in real_redis.__file__ or "dist-packages" in real_redis.__file__
    assert dbmod.pymysql is pymysql
