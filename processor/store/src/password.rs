//! Changing MUTT's own PostgreSQL password without sending it in clear.
//!
//! `ALTER ROLE … PASSWORD 'text'` would put the password in the server's statement log
//! whenever statements or errors are logged. Like `psql`'s `\password`, MUTT sends a
//! SCRAM-SHA-256 verifier instead (RFC 5802, RFC 7677): the server stores it as is, and
//! clients log in with the password as before.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use mutt_core::secret::Secret;
use sha2_010::{Digest, Sha256};
use sqlx::Connection;

use crate::db::Store;
use crate::error::StoreError;

/// PostgreSQL's default iteration count (`scram_iterations`).
const ITERATIONS: u32 = 4096;

/// The SCRAM-SHA-256 verifier of `password` with `salt`, in PostgreSQL's format:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |key: &[u8], msg: &[u8]| {
        // HMAC accepts keys of any length.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        m.update(msg);
        m.finalize().into_bytes()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

impl Store {
    /// Sets the password of the role this store logs in as. Connections already open stay
    /// open; new ones need the new password.
    pub async fn set_own_password(&self, password: &Secret) -> Result<(), StoreError> {
        // A connection of its own, without statement logging: the statement carries the
        // verifier, which must not reach MUTT's logs either.
        let mut conn = sqlx::PgConnection::connect_with(&self.quiet_options()).await?;
        let user: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut conn)
            .await?;
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|_| StoreError::Invalid("no randomness for the password salt".into()))?;
        let verifier = scram_verifier(password.expose(), &salt, ITERATIONS);
        // ALTER ROLE takes no parameters. The identifier is quoted; the verifier is made
        // of base64, digits and `$:` only, and is quoted all the same.
        let sql = format!(
            "ALTER ROLE \"{}\" PASSWORD '{}'",
            user.replace('"', "\"\""),
            verifier.replace('\'', "''")
        );
        let done = sqlx::query(&sql).execute(&mut conn).await;
        let _ = conn.close().await;
        done?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_have_postgres_format_and_depend_on_salt_and_password() {
        let v = scram_verifier("pencil", b"0123456789abcdef", 4096);
        let (head, keys) = v
            .split_once('$')
            .and_then(|(a, b)| Some((a, b.split_once('$')?)))
            .map(|(a, (b, c))| ((a, b), c))
            .unwrap();
        assert_eq!(head.0, "SCRAM-SHA-256");
        assert_eq!(head.1, format!("4096:{}", B64.encode(b"0123456789abcdef")));
        let (stored, server) = keys.split_once(':').unwrap();
        assert_eq!(B64.decode(stored).unwrap().len(), 32);
        assert_eq!(B64.decode(server).unwrap().len(), 32);
        assert!(!v.contains("pencil"));
        assert_ne!(v, scram_verifier("pencil", b"0123456789abcdeg", 4096));
        assert_ne!(v, scram_verifier("pencil2", b"0123456789abcdef", 4096));
        assert_eq!(v, scram_verifier("pencil", b"0123456789abcdef", 4096));
    }

    /// RFC 7677's example exchange: user "user", password "pencil", salt
    /// "W22ZaJ0SNY7soEsUEjb6gQ==", 4096 iterations. Its ServerSignature, computed from the
    /// ServerKey of our verifier, must match the RFC's `v=` value.
    #[test]
    fn the_server_key_matches_rfc_7677() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = scram_verifier("pencil", &salt, 4096);
        let server_key = B64.decode(v.rsplit_once(':').unwrap().1).unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&server_key).unwrap();
        m.update(auth_message.as_bytes());
        assert_eq!(
            B64.encode(m.finalize().into_bytes()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}
