//! TLS termination in the server itself (rustls with ring): a PEM
//! certificate chain and key, reloaded on SIGHUP without dropping a
//! connection, HTTP/2 and HTTP/1.1 offered by ALPN.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate and key files, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The server's certificate, replaceable while serving: a handshake takes
/// whichever pair is current; connections already open keep theirs.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Loads the pair.
    ///
    /// # Errors
    /// A message naming the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let current = RwLock::new(Arc::new(certified_key(&files)?));
        Ok(Arc::new(Self { files, current }))
    }

    /// Reads the files again; on any error the current pair stays in use.
    ///
    /// # Errors
    /// As [`Certificates::load`].
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Arc::new(certified_key(&self.files)?);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// An acceptor that offers `h2` and `http/1.1` by ALPN.
    pub fn acceptor(self: &Arc<Self>) -> TlsAcceptor {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("USER_TLS_KEY_FILE {}: {e}", files.key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("USER_TLS_KEY_FILE {}: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| format!("USER_TLS_KEY_FILE {} does not belong to the certificate: {e}", files.key.display()))?;
    Ok(certified)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("USER_TLS_CERT_FILE {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("USER_TLS_CERT_FILE {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_a_bad_one_is_named_and_never_replaces_the_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (write_pair(dir.path(), "one"), write_pair(dir.path(), "two"));
        let certificates = Certificates::load(one.clone()).unwrap();
        let mismatched = TlsFiles { cert: one.cert.clone(), key: two.key.clone() };
        assert!(Certificates::load(mismatched).unwrap_err().contains("does not belong"));
        let missing = TlsFiles { cert: dir.path().join("none.crt"), key: one.key.clone() };
        assert!(Certificates::load(missing).unwrap_err().starts_with("USER_TLS_CERT_FILE"));
        std::fs::write(&one.cert, "not PEM").unwrap();
        assert!(certificates.reload().unwrap_err().contains("no certificate"));
        std::fs::copy(&two.cert, &one.cert).unwrap();
        std::fs::copy(&two.key, &one.key).unwrap();
        certificates.reload().unwrap();
    }
}
