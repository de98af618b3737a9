//! The secret store and the Redis side of a password rotation.
//!
//! `{p}:secrets` is a hash, one field per rotated secret, holding its state with the values
//! (`mutt_core::credentials::StoredState`). It is the one place values live outside process
//! memory: every process needs them (a forwarder has no database), and Redis access already
//! means access to every event. It is never announced, logged or audited; announcements on
//! `{p}:control` carry the name and generation only (ADR 0012).
//!
//! Steps are compare-and-set on the generation, so that two operators rotating at once
//! cannot both win.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use mutt_core::credentials::{SecretName, StoredState};
use mutt_core::secret::Secret;
use redis::{AsyncCommands, Script};

use crate::client::Bus;
use crate::error::BusError;

/// Stores ARGV[2] in field ARGV[1] if the stored generation is ARGV[3] (absent counts as 0).
static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local gen = 0
if cur then
  local ok, decoded = pcall(cjson.decode, cur)
  if ok and type(decoded) == 'table' then gen = tonumber(decoded['generation']) or 0 end
end
if gen ~= tonumber(ARGV[3]) then return gen end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return -1
"#,
    )
});

/// A step lost a race: another one changed the secret first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The generation found.
    pub found: i64,
}

impl Bus {
    fn secrets_key(&self) -> String {
        format!("{}:secrets", self.names().prefix())
    }

    /// Every stored secret state. A field that does not parse is skipped (and reported by
    /// name only).
    pub async fn secret_states(&self) -> Result<BTreeMap<SecretName, StoredState>, BusError> {
        let all: BTreeMap<String, String> = self.conn().hgetall(self.secrets_key()).await?;
        let mut out = BTreeMap::new();
        for (field, text) in all {
            let Some(name) = SecretName::parse(&field) else {
                continue;
            };
            match serde_json::from_str::<StoredState>(&text) {
                Ok(s) => {
                    out.insert(name, s);
                }
                // serde_json's message could quote part of the text: name the field only.
                Err(_) => {
                    tracing::warn!(secret = %name, "stored secret state is unreadable; ignored")
                }
            }
        }
        Ok(out)
    }

    /// Stores `state` for `name` if the stored generation is `expected` (0: none stored).
    pub async fn put_secret_state(
        &self,
        name: SecretName,
        state: &StoredState,
        expected: i64,
    ) -> Result<Result<(), Conflict>, BusError> {
        let text = serde_json::to_string(state)
            .map_err(|_| BusError::Protocol("secret state does not serialise".into()))?;
        let r: i64 = CAS
            .key(self.secrets_key())
            .arg(name.as_str())
            .arg(text)
            .arg(expected)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(if r == -1 {
            Ok(())
        } else {
            Err(Conflict { found: r })
        })
    }

    /// The ACL user of this connection (`ACL WHOAMI`).
    pub async fn acl_whoami(&self) -> Result<String, BusError> {
        Ok(redis::cmd("ACL")
            .arg("WHOAMI")
            .query_async(&mut self.conn())
            .await?)
    }

    /// Adds `password` to `user`'s accepted passwords (`ACL SETUSER user >password`); the
    /// user keeps the ones it has.
    pub async fn acl_add_password(&self, user: &str, password: &Secret) -> Result<(), BusError> {
        self.acl_setuser(user, &format!(">{}", password.expose()))
            .await
    }

    /// Removes `password` from `user`'s accepted passwords (`ACL SETUSER user <password`).
    /// Connections already authenticated with it stay; new ones are refused.
    pub async fn acl_remove_password(&self, user: &str, password: &Secret) -> Result<(), BusError> {
        self.acl_setuser(user, &format!("<{}", password.expose()))
            .await
    }

    async fn acl_setuser(&self, user: &str, rule: &str) -> Result<(), BusError> {
        let r: redis::RedisResult<()> = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg(rule)
            .query_async(&mut self.conn())
            .await;
        // Redis's error for a bad rule can echo the rule, which holds the password: keep
        // the code, drop the text.
        r.map_err(|e| {
            BusError::Protocol(format!(
                "ACL SETUSER {user} refused ({})",
                e.code().unwrap_or("error")
            ))
        })
    }
}
