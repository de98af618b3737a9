//! SNMP datagrams: v1 and v2c notifications decoded with `rasn-snmp` (ADR 0020), and the
//! Response that acknowledges a v2c inform. The BER decoder is `rasn`'s; everything a
//! datagram may hold is a value here, never a panic (a fuzz target checks it).

use rasn::types::{Any, Integer, ObjectIdentifier};
use rasn_snmp::{v1, v2, v2c};
use serde_json::{Value, json};

/// `snmpTrapOID.0`.
pub const SNMP_TRAP_OID: &str = "1.3.6.1.6.3.1.1.4.1.0";
/// `sysUpTime.0`.
pub const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
/// `sysName.0`.
pub const SYS_NAME: &str = "1.3.6.1.2.1.1.5.0";
/// `snmpTrapAddress.0` (RFC 3584 §3.1): the original agent's address, set by proxies.
pub const SNMP_TRAP_ADDRESS: &str = "1.3.6.1.6.3.18.1.3.0";
/// `snmpTrapEnterprise.0` (RFC 3584 §3.1).
pub const SNMP_TRAP_ENTERPRISE: &str = "1.3.6.1.6.3.1.1.4.3.0";

/// The protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SNMPv1 (RFC 1157).
    V1,
    /// SNMPv2c (RFC 1901).
    V2c,
}

impl Version {
    /// `1` or `2c`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2c => "2c",
        }
    }
}

/// A notification: a v1 trap, a v2c trap or a v2c inform. `Debug` leaves the community
/// out.
#[derive(Clone)]
pub struct Notification {
    /// The protocol version.
    pub version: Version,
    /// The community string. A secret: never logged, never kept in the event.
    community: Vec<u8>,
    /// The notification's OID (`snmpTrapOID.0`; for v1, mapped per RFC 3584 §3.1).
    pub trap_oid: String,
    /// `sysUpTime.0` (v2c) or the trap's time stamp (v1), in hundredths of a second.
    pub uptime: Option<u32>,
    /// The variable bindings, in order, without `sysUpTime.0` and `snmpTrapOID.0`.
    pub varbinds: Vec<(String, Value)>,
    /// What a v1 trap carries besides its bindings.
    pub v1: Option<V1Fields>,
    /// For an inform: the request to answer.
    pub inform: Option<Inform>,
}

impl Notification {
    /// The community string the notification came with (compare it; never log it).
    pub fn community(&self) -> &[u8] {
        &self.community
    }
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("version", &self.version)
            .field("community", &"<redacted>")
            .field("trap_oid", &self.trap_oid)
            .field("uptime", &self.uptime)
            .field("varbinds", &self.varbinds)
            .field("v1", &self.v1)
            .field("inform", &self.inform.is_some())
            .finish()
    }
}

/// The fields of a v1 trap (RFC 1157 §4.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Fields {
    /// `enterprise`.
    pub enterprise: String,
    /// `agent-addr`, dotted.
    pub agent_addr: String,
    /// `generic-trap` (0 coldStart … 6 enterpriseSpecific).
    pub generic: i64,
    /// `specific-trap`.
    pub specific: i64,
}

/// An inform to acknowledge.
#[derive(Debug, Clone)]
pub struct Inform {
    request_id: i32,
    bindings: v2::VarBindList,
}

/// Why a datagram is not a notification MUTT takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not BER, or not an SNMP message.
    #[error("not an SNMP message")]
    Malformed,
    /// SNMPv3 (no USM support, ADR 0020) or an unknown version.
    #[error("SNMP version {0} is not accepted")]
    Version(i64),
    /// A Get, Set, Response, … rather than a notification.
    #[error("a {0} is not a notification")]
    NotANotification(&'static str),
    /// A v2c trap or inform without `snmpTrapOID.0` in its second binding.
    #[error("the notification has no snmpTrapOID.0")]
    NoTrapOid,
}

impl DecodeError {
    /// The `kind` label of `mutt_ingest_parse_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Version(_) => "version",
            Self::NotANotification(_) => "not_a_notification",
            Self::NoTrapOid => "no_trap_oid",
        }
    }
}

/// The version of an SNMP message, read by hand from its first bytes (`SEQUENCE {
/// INTEGER version, …`): an SNMPv3 message has no community, so the v1/v2c shape cannot
/// decode it, and it must still be told apart from garbage.
fn peek_version(d: &[u8]) -> Option<i64> {
    // SEQUENCE tag, then its length (short form, or long form with 1–4 length bytes).
    let (&tag, rest) = d.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let rest = if len & 0x80 == 0 {
        rest
    } else {
        let n = usize::from(len & 0x7f);
        if !(1..=4).contains(&n) {
            return None;
        }
        rest.get(n..)?
    };
    // INTEGER tag and a 1–8 byte two's-complement value.
    let (&tag, rest) = rest.split_first()?;
    if tag != 0x02 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if !(1..=8).contains(&len) {
        return None;
    }
    let bytes = rest.get(..len)?;
    let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in bytes {
        v = (v << 8) | i64::from(b);
    }
    Some(v)
}

/// Decodes one datagram.
pub fn decode(datagram: &[u8]) -> Result<Notification, DecodeError> {
    match peek_version(datagram) {
        None => return Err(DecodeError::Malformed),
        Some(0 | 1) => {}
        Some(v) => return Err(DecodeError::Version(v)),
    }
    let outer: v2c::Message<Any> =
        rasn::ber::decode(datagram).map_err(|_| DecodeError::Malformed)?;
    let version = i64::try_from(&outer.version).map_err(|_| DecodeError::Version(-1))?;
    let community = outer.community.to_vec();
    match version {
        0 => {
            let pdus: v1::Pdus =
                rasn::ber::decode(outer.data.as_bytes()).map_err(|_| DecodeError::Malformed)?;
            let v1::Pdus::Trap(t) = pdus else {
                return Err(DecodeError::NotANotification(v1_kind(&pdus)));
            };
            Ok(from_v1(community, t))
        }
        1 => {
            let pdus: v2::Pdus =
                rasn::ber::decode(outer.data.as_bytes()).map_err(|_| DecodeError::Malformed)?;
            let (pdu, inform) = match pdus {
                v2::Pdus::Trap(v2::Trap(p)) => (p, false),
                v2::Pdus::InformRequest(v2::InformRequest(p)) => (p, true),
                other => return Err(DecodeError::NotANotification(v2_kind(&other))),
            };
            from_v2(community, pdu, inform)
        }
        v => Err(DecodeError::Version(v)),
    }
}

/// The Response to an inform (RFC 3416 §4.2.7): its request id and bindings, no error.
pub fn inform_response(n: &Notification) -> Option<Vec<u8>> {
    let inform = n.inform.as_ref()?;
    let msg = v2c::Message {
        version: Integer::from(1),
        community: n.community.clone().into(),
        data: v2::Pdus::Response(v2::Response(v2::Pdu {
            request_id: inform.request_id,
            error_status: v2::Pdu::ERROR_STATUS_NO_ERROR,
            error_index: 0,
            variable_bindings: inform.bindings.clone(),
        })),
    };
    rasn::ber::encode(&msg).ok()
}

fn from_v1(community: Vec<u8>, t: v1::Trap) -> Notification {
    let enterprise = oid_text(&t.enterprise);
    let generic = i64::try_from(&t.generic_trap).unwrap_or(-1);
    let specific = i64::try_from(&t.specific_trap).unwrap_or(-1);
    // RFC 3584 §3.1: a generic trap is snmpTraps.(generic+1); an enterprise-specific one
    // is enterprise.0.specific.
    let trap_oid = if (0..6).contains(&generic) {
        format!("1.3.6.1.6.3.1.1.5.{}", generic + 1)
    } else {
        format!("{enterprise}.0.{specific}")
    };
    let agent_addr = v1_addr(&t.agent_addr);
    let varbinds = t
        .variable_bindings
        .iter()
        .map(|vb| (oid_text(&vb.name), v1_value(&vb.value)))
        .collect();
    Notification {
        version: Version::V1,
        community,
        trap_oid,
        uptime: Some(t.time_stamp.0),
        varbinds,
        v1: Some(V1Fields {
            enterprise,
            agent_addr,
            generic,
            specific,
        }),
        inform: None,
    }
}

fn from_v2(community: Vec<u8>, pdu: v2::Pdu, inform: bool) -> Result<Notification, DecodeError> {
    let mut uptime = None;
    let mut trap_oid = None;
    let mut varbinds = Vec::with_capacity(pdu.variable_bindings.len());
    for vb in &pdu.variable_bindings {
        let name = oid_text(&vb.name);
        match (name.as_str(), &vb.value) {
            (SYS_UPTIME, v2::VarBindValue::Value(v)) if uptime.is_none() => {
                if let v2::ObjectSyntax::ApplicationWide(rasn_smi::v2::ApplicationSyntax::Ticks(
                    t,
                )) = v
                {
                    uptime = Some(t.0);
                    continue;
                }
                varbinds.push((name, v2_value(&vb.value)));
            }
            (
                SNMP_TRAP_OID,
                v2::VarBindValue::Value(v2::ObjectSyntax::Simple(
                    rasn_smi::v2::SimpleSyntax::ObjectId(o),
                )),
            ) if trap_oid.is_none() => trap_oid = Some(oid_text(o)),
            _ => varbinds.push((name, v2_value(&vb.value))),
        }
    }
    let trap_oid = trap_oid.ok_or(DecodeError::NoTrapOid)?;
    Ok(Notification {
        version: Version::V2c,
        community,
        trap_oid,
        uptime,
        varbinds,
        v1: None,
        inform: inform.then(|| Inform {
            request_id: pdu.request_id,
            bindings: pdu.variable_bindings,
        }),
    })
}

fn oid_text(oid: &ObjectIdentifier) -> String {
    let mut s = String::with_capacity(oid.len() * 3);
    for (i, arc) in oid.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(&arc.to_string());
    }
    s
}

/// Printable text as a string; other bytes as `0x…` hex (MAC addresses, binary blobs).
fn octets(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s)
            if !s
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            json!(s)
        }
        _ => {
            let mut hex = String::with_capacity(2 + b.len() * 2);
            hex.push_str("0x");
            for byte in b {
                hex.push_str(&format!("{byte:02x}"));
            }
            json!(hex)
        }
    }
}

fn integer(i: &Integer) -> Value {
    match i64::try_from(i) {
        Ok(n) => json!(n),
        Err(_) => json!(i.to_string()),
    }
}

fn ip(b: &[u8]) -> String {
    b.iter().map(u8::to_string).collect::<Vec<_>>().join(".")
}

fn v2_value(v: &v2::VarBindValue) -> Value {
    use rasn_smi::v2::{ApplicationSyntax as A, SimpleSyntax as S};
    match v {
        v2::VarBindValue::Value(v2::ObjectSyntax::Simple(s)) => match s {
            S::Integer(i) => integer(i),
            S::String(o) => octets(o),
            S::ObjectId(o) => json!(oid_text(o)),
        },
        v2::VarBindValue::Value(v2::ObjectSyntax::ApplicationWide(a)) => match a {
            A::Address(addr) => json!(ip(&addr.0[..])),
            A::Counter(c) => json!(c.0),
            A::Ticks(t) => json!(t.0),
            A::Arbitrary(o) => octets(o.as_ref()),
            A::BigCounter(c) => json!(c.0),
            A::Unsigned(u) => json!(u.0),
        },
        v2::VarBindValue::Unspecified => Value::Null,
        v2::VarBindValue::NoSuchObject => json!("noSuchObject"),
        v2::VarBindValue::NoSuchInstance => json!("noSuchInstance"),
        v2::VarBindValue::EndOfMibView => json!("endOfMibView"),
    }
}

fn v1_value(v: &rasn_smi::v1::ObjectSyntax) -> Value {
    use rasn_smi::v1::{ApplicationSyntax as A, ObjectSyntax as O, SimpleSyntax as S};
    match v {
        O::Simple(S::Number(i)) => integer(i),
        O::Simple(S::String(o)) => octets(o),
        O::Simple(S::Object(o)) => json!(oid_text(o)),
        O::Simple(S::Empty) => Value::Null,
        O::ApplicationWide(a) => match a {
            A::Address(rasn_smi::v1::NetworkAddress::Internet(addr)) => json!(ip(&addr.0[..])),
            A::Counter(c) => json!(c.0),
            A::Gauge(g) => json!(g.0),
            A::Ticks(t) => json!(t.0),
            A::Arbitrary(o) => octets(o.as_ref()),
        },
    }
}

fn v1_addr(a: &rasn_smi::v1::NetworkAddress) -> String {
    let rasn_smi::v1::NetworkAddress::Internet(addr) = a;
    ip(&addr.0[..])
}

fn v1_kind(p: &v1::Pdus) -> &'static str {
    match p {
        v1::Pdus::GetRequest(_) => "GetRequest",
        v1::Pdus::GetNextRequest(_) => "GetNextRequest",
        v1::Pdus::GetResponse(_) => "GetResponse",
        v1::Pdus::SetRequest(_) => "SetRequest",
        v1::Pdus::Trap(_) => "Trap",
    }
}

fn v2_kind(p: &v2::Pdus) -> &'static str {
    match p {
        v2::Pdus::GetRequest(_) => "GetRequest",
        v2::Pdus::GetNextRequest(_) => "GetNextRequest",
        v2::Pdus::Response(_) => "Response",
        v2::Pdus::SetRequest(_) => "SetRequest",
        v2::Pdus::GetBulkRequest(_) => "GetBulkRequest",
        v2::Pdus::InformRequest(_) => "InformRequest",
        v2::Pdus::Trap(_) => "SNMPv2-Trap",
        v2::Pdus::Report(_) => "Report",
    }
}

#[cfg(test)]
mod tests;
