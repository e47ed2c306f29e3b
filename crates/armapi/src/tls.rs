//! The lab's certificate authority and the endpoints' server certificate: what users add to
//! their client's trust (`REQUESTS_CA_BUNDLE` for az and the Python SDK), as Azure Stack Hub
//! users add their deployment's root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why the lab's TLS material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a key or certificate failed.
    #[error("generating the lab certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a PEM file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A PEM file did not hold what it should.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The PEM files of a lab's API: its CA (public, handed to clients) and the server's chain.
#[derive(Debug, Clone)]
pub struct LabTls {
    /// The CA certificate users trust.
    pub ca_pem_path: PathBuf,
    server_cert_pem: String,
    server_key_pem: String,
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl LabTls {
    /// The lab's CA and server certificate in `dir`, made on first use and kept afterwards, so a
    /// client that trusts the CA keeps trusting the endpoints across controller restarts.
    /// The server certificate names 127.0.0.1, ::1 and localhost: the endpoints listen on
    /// loopback only.
    pub fn load_or_create(dir: &Path, lab: &str) -> Result<LabTls, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let ca_pem_path = dir.join(CA_CERT);
        let (cert, key) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
        if !(ca_pem_path.exists() && cert.exists() && key.exists()) {
            let ca_key = KeyPair::generate()?;
            let mut ca = CertificateParams::default();
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, format!("hybridnet lab {lab} CA"));
            ca.distinguished_name = dn;
            let ca_cert = ca.self_signed(&ca_key)?;
            let issuer = Issuer::new(ca, ca_key);
            let server_key = KeyPair::generate()?;
            let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
            server.subject_alt_names.extend([
                SanType::IpAddress([127, 0, 0, 1].into()),
                SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
            ]);
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, format!("hybridnet lab {lab} API"));
            server.distinguished_name = dn;
            server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let server_cert = server.signed_by(&server_key, &issuer)?;
            write(&dir.join(CA_KEY), &issuer.key().serialize_pem(), true)?;
            write(&key, &server_key.serialize_pem(), true)?;
            write(&cert, &server_cert.pem(), false)?;
            write(&ca_pem_path, &ca_cert.pem(), false)?;
        }
        Ok(LabTls {
            server_cert_pem: read(&cert)?,
            server_key_pem: read(&key)?,
            ca_pem_path,
        })
    }

    /// The rustls server configuration for the endpoints (TLS 1.2 and 1.3, HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pem_err = |message: String| TlsError::Pem {
            path: self.ca_pem_path.with_file_name(SERVER_CERT),
            message,
        };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| pem_err(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .map_err(|e| pem_err(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
