//! The PostgreSQL server `scripts/test` starts: a fresh database per test.

use sqlx::{Connection, PgConnection};

/// Names the server's admin url (`postgres://sealplane@127.0.0.1:PORT/sealplane_test`).
pub const URL_ENV: &str = "SEALPLANE_TEST_POSTGRES_URL";

/// The admin url; panics with how to get one when unset (tests never skip).
pub fn admin_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{URL_ENV} is not set: run these tests with `scripts/test` (e.g. `scripts/test -- --test postgres`), which starts a PostgreSQL server and exports it"
        )
    })
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// url");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}{query}")
}

/// A database of its own on the test server, dropped (with every
/// connection to it) on drop.
pub struct Database {
    /// Its url (no password: the test server trusts loopback).
    pub url: String,
    name: String,
}

impl Database {
    /// Creates a database with a random name.
    pub async fn create() -> Database {
        let admin = admin_url();
        let name = format!("sealplane_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server at {URL_ENV}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        Database {
            url: with_database(&admin, &name),
            name,
        }
    }

    /// Its url with `user:password@` in it, for tests that check a password
    /// never shows (the test server ignores it: trust authentication).
    pub fn url_with_password(&self, password: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let rest = rest.split_once('@').map(|(_, host)| host).unwrap_or(rest);
        format!("{scheme}://sealplane:{password}@{rest}")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        // A thread of its own: drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok(mut conn) = PgConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                })
        })
        .join();
    }
}
