//! An SMTP server on 127.0.0.1 that keeps what it is sent: plain, STARTTLS (offered, or
//! required before MAIL) or TLS from the first byte, with AUTH PLAIN/LOGIN when given a user.
//! The certificate is tests/fixtures/tls/server.pem, signed by tests/fixtures/tls/ca.pem.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// Whether the message travelled over TLS.
    pub encrypted: bool,
    /// The user that authenticated, if any.
    pub user: Option<String>,
}

pub struct SmtpServer {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let dir = fixtures();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    Arc::new(config)
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

impl SmtpServer {
    /// `login`: the user and password AUTH must present (AUTH is then required).
    pub fn start(security: Security, login: Option<(&str, &str)>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        let login = login.map(|(u, p)| (u.to_string(), p.to_string()));
        let tls = tls_config();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, login, tls) = (m.clone(), login.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = session(stream, security, login, tls, &m);
                });
            }
        });
        SmtpServer { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }
}

fn wrap(
    stream: Box<dyn Stream>,
    tls: &Arc<rustls::ServerConfig>,
) -> std::io::Result<Box<dyn Stream>> {
    let conn = rustls::ServerConnection::new(tls.clone()).map_err(std::io::Error::other)?;
    Ok(Box::new(rustls::StreamOwned::new(conn, stream)))
}

fn session(
    tcp: TcpStream,
    security: Security,
    login: Option<(String, String)>,
    tls: Arc<rustls::ServerConfig>,
    mails: &Mutex<Vec<Mail>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut encrypted = security == Security::Tls;
    let mut stream: Box<dyn Stream> = Box::new(tcp);
    if encrypted {
        stream = wrap(stream, &tls)?;
    }
    let mut reader = BufReader::new(stream);
    say(&mut reader, "220 localhost ESMTP test\r\n")?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut user = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut r = String::from("250-localhost\r\n");
            if security == Security::StartTls && !encrypted {
                r.push_str("250-STARTTLS\r\n");
            }
            if login.is_some() {
                r.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            r.push_str("250 8BITMIME\r\n");
            r
        } else if upper == "STARTTLS" && security == Security::StartTls && !encrypted {
            say(&mut reader, "220 go ahead\r\n")?;
            stream = reader.into_inner();
            stream = wrap(stream, &tls)?;
            reader = BufReader::new(stream);
            encrypted = true;
            continue;
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let offset = line.len() - rest.len();
            let given = decode(line[offset..].trim());
            let mut parts = given.split('\0').skip(1);
            let (u, p) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if login.as_ref().is_some_and(|(lu, lp)| lu == u && lp == p) {
                user = Some(u.to_string());
                "235 ok\r\n".into()
            } else {
                "535 bad credentials\r\n".into()
            }
        } else if upper.starts_with("MAIL FROM:") {
            if security == Security::StartTls && !encrypted {
                "530 must issue STARTTLS first\r\n".into()
            } else if login.is_some() && user.is_none() {
                "530 authentication required\r\n".into()
            } else {
                from = line[10..].trim().trim_matches(['<', '>']).to_string();
                to.clear();
                "250 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            say(&mut reader, "354 end with .\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l.trim_end_matches(['\r', '\n']) == "." {
                    break;
                }
                data.push_str(&l);
            }
            mails.lock().expect("mails").push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
                encrypted,
                user: user.clone(),
            });
            "250 queued\r\n".into()
        } else if upper == "QUIT" {
            say(&mut reader, "221 bye\r\n")?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else {
            "502 not implemented\r\n".into()
        };
        say(&mut reader, &reply)?;
    }
}

fn say(reader: &mut BufReader<Box<dyn Stream>>, text: &str) -> std::io::Result<()> {
    let w = reader.get_mut();
    w.write_all(text.as_bytes())?;
    w.flush()
}

/// Base64, enough for AUTH PLAIN.
fn decode(s: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let Some(v) = TABLE.iter().position(|&t| t == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
