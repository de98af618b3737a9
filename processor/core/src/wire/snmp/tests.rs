use super::*;
use proptest::prelude::*;
use rasn_smi::v2::{ApplicationSyntax, SimpleSyntax};

fn oid(s: &str) -> ObjectIdentifier {
    let arcs: Vec<u32> = s.split('.').map(|a| a.parse().unwrap()).collect();
    ObjectIdentifier::new(arcs).unwrap()
}

fn vb(name: &str, value: v2::ObjectSyntax) -> v2::VarBind {
    v2::VarBind {
        name: oid(name),
        value: v2::VarBindValue::Value(value),
    }
}

fn v2c(community: &str, pdus: v2::Pdus) -> Vec<u8> {
    rasn::ber::encode(&v2c::Message {
        version: Integer::from(1),
        community: community.as_bytes().to_vec().into(),
        data: pdus,
    })
    .unwrap()
}

fn link_down_bindings() -> Vec<v2::VarBind> {
    vec![
        vb(
            SYS_UPTIME,
            v2::ObjectSyntax::ApplicationWide(ApplicationSyntax::Ticks(rasn_smi::v1::TimeTicks(
                12345,
            ))),
        ),
        vb(
            SNMP_TRAP_OID,
            v2::ObjectSyntax::Simple(SimpleSyntax::ObjectId(oid("1.3.6.1.6.3.1.1.5.3"))),
        ),
        vb(
            "1.3.6.1.2.1.2.2.1.1.2",
            v2::ObjectSyntax::Simple(SimpleSyntax::Integer(2.into())),
        ),
        vb(
            SYS_NAME,
            v2::ObjectSyntax::Simple(SimpleSyntax::String(b"core-router-01".to_vec().into())),
        ),
        vb(
            "1.3.6.1.2.1.2.2.1.6.2",
            v2::ObjectSyntax::Simple(SimpleSyntax::String(
                vec![0, 0x1b, 0x54, 0xaa, 0xbb, 0xcc].into(),
            )),
        ),
    ]
}

fn pdu(bindings: Vec<v2::VarBind>) -> v2::Pdu {
    v2::Pdu {
        request_id: 77,
        error_status: 0,
        error_index: 0,
        variable_bindings: bindings,
    }
}

#[test]
fn a_v2c_trap_gives_its_oid_uptime_and_bindings() {
    let d = v2c(
        "public",
        v2::Pdus::Trap(v2::Trap(pdu(link_down_bindings()))),
    );
    let n = decode(&d).unwrap();
    assert_eq!(n.version, Version::V2c);
    assert_eq!(n.community(), b"public");
    assert!(
        !format!("{n:?}").contains("public"),
        "Debug leaves the community out"
    );
    assert_eq!(n.trap_oid, "1.3.6.1.6.3.1.1.5.3");
    assert_eq!(n.uptime, Some(12345));
    assert!(n.inform.is_none());
    assert_eq!(n.varbinds.len(), 3);
    assert_eq!(
        n.varbinds[0],
        ("1.3.6.1.2.1.2.2.1.1.2".to_string(), json!(2))
    );
    assert_eq!(n.varbinds[1].1, json!("core-router-01"));
    // Bytes that are not text come as hex.
    assert_eq!(n.varbinds[2].1, json!("0x001b54aabbcc"));
}

#[test]
fn an_inform_is_answered_with_its_request_id_and_bindings() {
    let d = v2c(
        "s3cret",
        v2::Pdus::InformRequest(v2::InformRequest(pdu(link_down_bindings()))),
    );
    let n = decode(&d).unwrap();
    let r = inform_response(&n).unwrap();
    let back: v2c::Message<v2::Pdus> = rasn::ber::decode(&r).unwrap();
    assert_eq!(back.community.to_vec(), b"s3cret");
    let v2::Pdus::Response(v2::Response(p)) = back.data else {
        panic!("not a response");
    };
    assert_eq!(p.request_id, 77);
    assert_eq!(p.error_status, 0);
    assert_eq!(p.variable_bindings, link_down_bindings());
}

#[test]
fn a_v1_trap_is_mapped_per_rfc_3584() {
    let trap = |generic: i64, specific: i64| {
        let msg = v1::Message {
            version: Integer::from(0),
            community: b"public".to_vec().into(),
            data: v1::Pdus::Trap(v1::Trap {
                enterprise: oid("1.3.6.1.4.1.9.9.41"),
                agent_addr: rasn_smi::v1::NetworkAddress::Internet(rasn_smi::v1::IpAddress(
                    [10, 1, 2, 3].into(),
                )),
                generic_trap: generic.into(),
                specific_trap: specific.into(),
                time_stamp: rasn_smi::v1::TimeTicks(500),
                variable_bindings: vec![v1::VarBind {
                    name: oid("1.3.6.1.2.1.2.2.1.1.5"),
                    value: rasn_smi::v1::ObjectSyntax::Simple(rasn_smi::v1::SimpleSyntax::Number(
                        5.into(),
                    )),
                }],
            }),
        };
        decode(&rasn::ber::encode(&msg).unwrap()).unwrap()
    };
    let n = trap(2, 0);
    assert_eq!(n.version, Version::V1);
    assert_eq!(n.trap_oid, "1.3.6.1.6.3.1.1.5.3");
    assert_eq!(n.uptime, Some(500));
    let v1 = n.v1.unwrap();
    assert_eq!(v1.agent_addr, "10.1.2.3");
    assert_eq!(v1.enterprise, "1.3.6.1.4.1.9.9.41");
    let n = trap(6, 1);
    assert_eq!(n.trap_oid, "1.3.6.1.4.1.9.9.41.0.1");
}

#[test]
fn other_messages_are_refused_with_their_kind() {
    let get = v2c("public", v2::Pdus::GetRequest(v2::GetRequest(pdu(vec![]))));
    assert_eq!(
        decode(&get).unwrap_err(),
        DecodeError::NotANotification("GetRequest")
    );
    let no_oid = v2c("public", v2::Pdus::Trap(v2::Trap(pdu(vec![]))));
    assert_eq!(decode(&no_oid).unwrap_err(), DecodeError::NoTrapOid);
    assert_eq!(decode(b"").unwrap_err(), DecodeError::Malformed);
    // A v2c header without a community or PDU.
    assert_eq!(
        decode(b"\x30\x03\x02\x01\x01").unwrap_err().kind(),
        "malformed"
    );
    assert_eq!(
        decode(b"\x04\x03\x02\x01\x01").unwrap_err().kind(),
        "malformed"
    );
    // An SNMPv3 message: version 3, then msgGlobalData (a SEQUENCE), no community.
    let v3 = [
        0x30, 0x13, 0x02, 0x01, 0x03, 0x30, 0x0e, 0x02, 0x02, 0x12, 0x34, 0x02, 0x03, 0x00, 0xff,
        0xe3, 0x04, 0x01, 0x04, 0x02, 0x01, 0x03,
    ];
    assert_eq!(decode(&v3).unwrap_err(), DecodeError::Version(3));
    // The long length form.
    let mut long = vec![0x30, 0x81, 0x03, 0x02, 0x01, 0x03];
    assert_eq!(decode(&long).unwrap_err(), DecodeError::Version(3));
    long[5] = 0x00;
    assert_eq!(decode(&long).unwrap_err(), DecodeError::Malformed);
}

proptest! {
    /// Arbitrary bytes, and valid traps with bytes flipped: never a panic.
    #[test]
    fn any_datagram_decodes_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn a_damaged_trap_never_panics(at in 0usize..200, byte in any::<u8>()) {
        let mut d = v2c("public", v2::Pdus::Trap(v2::Trap(pdu(link_down_bindings()))));
        let i = at % d.len();
        d[i] = byte;
        let _ = decode(&d);
    }
}
