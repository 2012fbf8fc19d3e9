//! A test CA and certificates, made with the `openssl` command (every
//! machine of the project has it): a server certificate for `127.0.0.1`
//! and `localhost`, and a client certificate, all signed by the CA.
//! Another CA's client certificate is there to be refused.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a test PKI, in one directory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The directory.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM; SANs `IP:127.0.0.1`, `DNS:localhost`).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A client certificate signed by another CA.
    pub rogue_cert: PathBuf,
    /// Its key.
    pub rogue_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    crate::process::run_ok(
        Command::new("openssl").args(args).current_dir(dir),
        &format!("openssl {args:?}"),
    );
}

fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// Issues `name.crt`/`name.key` signed by `ca`, with `ext` (an
/// extensions section's lines).
fn issue(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";

impl Pki {
    /// Makes a CA, a server and a client certificate in `dir`.
    pub fn create(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        ca(dir, "ca");
        ca(dir, "rogue-ca");
        issue(dir, "ca", "server", "larch-store", SERVER_EXT);
        issue(dir, "ca", "client", "larch-client", CLIENT_EXT);
        issue(dir, "rogue-ca", "rogue", "rogue-client", CLIENT_EXT);
        let p = |n: &str| dir.join(n);
        Pki {
            dir: dir.to_path_buf(),
            ca: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            client_cert: p("client.crt"),
            client_key: p("client.key"),
            rogue_cert: p("rogue.crt"),
            rogue_key: p("rogue.key"),
        }
    }

    /// Issues a new server certificate with common name `cn` and puts it
    /// and its key in place of the current ones, each by rename (as a
    /// certificate manager rotates them).
    pub fn rotate_server(&self, cn: &str) {
        issue(&self.dir, "ca", "server-next", cn, SERVER_EXT);
        std::fs::rename(self.dir.join("server-next.key"), &self.server_key).unwrap();
        std::fs::rename(self.dir.join("server-next.crt"), &self.server_cert).unwrap();
    }
}
