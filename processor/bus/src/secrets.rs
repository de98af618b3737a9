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

    /// Applies `rule` on the master, then on each of its replicas: Redis does not
    /// replicate ACL changes, and a replica promoted by a failover must accept the
    /// passwords the processes use. A replica that refuses (or cannot be reached) fails
    /// the step, which can be run again (adding or removing a password twice is the same).
    async fn acl_setuser(&self, user: &str, rule: &str) -> Result<(), BusError> {
        let mut setuser = redis::cmd("ACL");
        setuser.arg("SETUSER").arg(user).arg(rule);
        // Redis's error for a bad rule can echo the rule, which holds the password: keep
        // the code, drop the text.
        let refused = |on: &str, e: redis::RedisError| {
            BusError::Protocol(format!(
                "ACL SETUSER {user} refused by {on} ({})",
                e.code().unwrap_or(if e.is_io_error() {
                    "unreachable"
                } else {
                    "error"
                })
            ))
        };
        setuser
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| refused("the master", e))?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut self.conn())
            .await?;
        let master = self.client_now()?.get_connection_info().clone();
        for (host, port) in replicas(&info) {
            let on = format!("the replica {host}:{port}");
            let addr = match master.addr() {
                redis::ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => redis::ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => redis::ConnectionAddr::Tcp(host.clone(), port),
            };
            let client = redis::Client::open(master.clone().set_addr(addr))?;
            let applied = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                setuser.query_async::<()>(&mut conn).await
            };
            match tokio::time::timeout(std::time::Duration::from_secs(5), applied).await {
                Ok(r) => r.map_err(|e| refused(&on, e))?,
                Err(_) => {
                    return Err(BusError::Protocol(format!(
                        "ACL SETUSER {user}: {on} did not answer"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The replicas a master lists in `INFO replication` (`slave0:ip=…,port=…,state=online,…`).
fn replicas(info: &str) -> Vec<(String, u16)> {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains("ip="))
        .filter_map(|l| {
            let fields = l.split_once(':')?.1;
            let field = |k: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
            };
            Some((field("ip")?.to_string(), field("port")?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod replica_tests {
    use super::replicas;

    #[test]
    fn replicas_are_read_from_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=10.0.0.7,port=6380,state=online,offset=42,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=6381,state=wait_bgsave,offset=0,lag=1\r\n\
                    master_replid:abc\r\n";
        assert_eq!(
            replicas(info),
            vec![
                ("10.0.0.7".to_string(), 6380),
                ("127.0.0.1".to_string(), 6381)
            ]
        );
        assert!(replicas("role:master\r\nconnected_slaves:0\r\n").is_empty());
    }
}
