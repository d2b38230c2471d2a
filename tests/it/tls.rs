//! Outgoing TLS trusts the system's certificates: the `armbot` binary reaches a Slack API
//! served with a certificate of a private CA once `SSL_CERT_FILE` names that CA, and refuses
//! it otherwise. (The same roots serve Scaleway, the runner manager's metrics and GitLab.)

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::{Arc, mpsc},
    time::Duration,
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_armbot");
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");

/// A TLS server on 127.0.0.1 that answers every request as Slack answers `auth.test`.
fn slack_over_tls() -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(format!("{DATA}/server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(format!("{DATA}/server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate hangs up here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = r#"{"ok":true,"team":"Test","team_id":"T0TLS","user_id":"UTLS","bot_id":"BTLS"}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    addr
}

/// Starts `armbot serve` against `slack`, returns its log line about `auth.test`, and stops it.
fn auth_test_line(slack: SocketAddr, extra: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITLAB_WEBHOOK_TOKEN", "glpat-tls-test")
        .env("SLACK_BOT_TOKEN", "xoxb-tls-test")
        .env("SLACK_API_URL", format!("https://{slack}/api"))
        .env("ARMBOT_NOTIFY_CHANNEL", "C0TLS")
        .env("ARMBOT_LISTEN", "127.0.0.1:0")
        .env("ARMBOT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("armbot said nothing about auth.test");
        if line.contains("connected to Slack") || line.contains("auth.test failed") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn a_private_ca_in_ssl_cert_file_is_trusted() {
    let slack = slack_over_tls();
    let trusted = auth_test_line(slack, &[("SSL_CERT_FILE", &format!("{DATA}/ca.pem"))]);
    assert!(trusted.contains("connected to Slack"), "{trusted}");
    assert!(trusted.contains("UTLS"), "{trusted}");

    // The same server without its CA: the system's roots and the Mozilla roots do not know it.
    let refused = auth_test_line(slack, &[]);
    assert!(refused.contains("auth.test failed"), "{refused}");
}
