//! PostgreSQL over TLS: sslmode=require on the local server, verify-full against a cluster of the test's own.

use super::*;

#[tokio::test]
async fn postgres_connects_over_tls_with_sslmode_require_and_verify_full_checks_the_certificate() {
    use sqlx::Connection as _;
    let Some(url) = user_core::testing::postgres_schema_url().await else { return };
    let mut plain = sqlx::PgConnection::connect(&url).await.unwrap();
    let ssl_on: String = sqlx::query_scalar("show ssl").fetch_one(&mut plain).await.unwrap();
    if ssl_on != "on" {
        user_core::testing::skipped(&format!("TLS to PostgreSQL: this server has ssl = {ssl_on}"));
        return;
    }
    let required = format!("{url}&sslmode=require");
    let store = store::open(&required).await.unwrap();
    store.migrate().await.unwrap();
    let service = UserService::new(store, config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&required).await.unwrap();
    let encrypted: bool = sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(encrypted, "sslmode=require runs over TLS");
    // The local server's certificate is self-signed: verify-full refuses it
    // unless sslrootcert names its issuer.
    let refused = store::open(&format!("{url}&sslmode=verify-full")).await.unwrap_err();
    assert!(refused.to_string().to_lowercase().contains("certificate"), "{refused}");
}

/// A PostgreSQL cluster of the test's own, reachable over TCP with TLS only,
/// its certificate issued by a throwaway CA; stopped when dropped.
struct TlsOnlyPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    ca: std::path::PathBuf,
}

impl TlsOnlyPostgres {
    /// `None` (with the reason printed) where PostgreSQL's own programs are
    /// not installed, unless `USER_TEST_REQUIRE_POSTGRES=1`.
    fn start() -> Option<TlsOnlyPostgres> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use std::os::unix::fs::PermissionsExt;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|v| Some(v.ok()?.path().join("bin")))
            .find(|bin| bin.join("initdb").exists());
        let Some(bin) = bin else {
            let required = std::env::var("USER_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true");
            assert!(!required, "USER_TEST_REQUIRE_POSTGRES=1 but initdb is not installed");
            user_core::testing::skipped(
                "a TLS-only PostgreSQL cluster: initdb is not installed (the postgresql server package)",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ca_path = dir.path().join("ca.pem");
        let mut cluster = TlsOnlyPostgres { dir, bin, port, ca: ca_path.clone() };
        if let Some((uid, gid)) = postgres_user_when_root() {
            std::os::unix::fs::chown(cluster.dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut init = cluster.as_owner("initdb");
        init.args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        let init = init.output().unwrap();
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
        let owner = std::fs::metadata(&data).unwrap();
        for (name, text) in [("server.crt", cert.pem()), ("server.key", key.serialize_pem())] {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        }
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let conf = format!(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nlisten_addresses = '127.0.0.1'\n\
             port = {port}\nunix_socket_directories = '{}'\nfsync = off\n",
            cluster.dir.path().display()
        );
        let mut postgresql_conf = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut postgresql_conf, conf.as_bytes()).unwrap();
        // TCP only with TLS; the socket is for pg_ctl's readiness check.
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").unwrap();
        let log = cluster.dir.path().join("postgres.log");
        let started = cluster
            .as_owner("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(started.status.success(), "pg_ctl start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        cluster.ca = ca_path;
        Some(cluster)
    }

    /// One of PostgreSQL's programs, run as the owner of the cluster (the
    /// `postgres` user when the tests run as root, which PostgreSQL refuses).
    fn as_owner(&self, program: &str) -> std::process::Command {
        let program = self.bin.join(program);
        if postgres_user_when_root().is_some() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

/// The `postgres` user's uid and gid when the tests run as root.
fn postgres_user_when_root() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = std::process::Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

impl Drop for TlsOnlyPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.as_owner("pg_ctl").args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output();
    }
}

#[tokio::test]
async fn a_tls_only_postgresql_with_a_private_ca_is_reached_with_verify_full() {
    let Some(pg) = TlsOnlyPostgres::start() else { return };
    let ca = pg.ca.display().to_string();
    for (host, mode) in [("localhost", "verify-full"), ("127.0.0.1", "verify-full"), ("localhost", "verify-ca")] {
        let url = pg.url(host, &format!("sslmode={mode}&sslrootcert={ca}"));
        let store = store::open(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
    }
    let url = pg.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let service = UserService::new(store::open(&url).await.unwrap(), config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    // Without TLS the server refuses; without the CA the client refuses.
    let plain = store::open(&pg.url("localhost", "sslmode=disable")).await.unwrap_err();
    assert!(plain.to_string().contains("no pg_hba.conf entry") || plain.to_string().contains("SSL off"), "{plain}");
    let untrusted = store::open(&pg.url("localhost", "sslmode=verify-full")).await.unwrap_err();
    assert!(untrusted.to_string().to_lowercase().contains("certificate"), "{untrusted}");
}
