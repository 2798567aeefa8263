//! The key table's rules, without a broker.

use super::*;
use crate::calls::Reply;

fn req(key: &str, payload: &[u8]) -> InvokeRequest {
    InvokeRequest {
        target: "dev-1".into(),
        method: "open".into(),
        payload: payload.to_vec().into(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

fn answer(id: CallId, payload: &'static [u8]) -> Result<Answer, Failed> {
    Ok(Answer {
        reply: Reply {
            status: 200,
            payload: bytes::Bytes::from_static(payload),
            content_type: None,
            exec_us: None,
            accepted_at: None,
        },
        request_id: id,
        elapsed: Duration::from_millis(1),
    })
}

fn failed(id: CallId, error: Error) -> Result<Answer, Failed> {
    Err(Failed {
        error,
        request_id: id,
    })
}

fn lead(t: &Arc<Idempotency>, r: &InvokeRequest, id: CallId) -> Ticket {
    match t.claim(r, id).expect("claim") {
        Claim::Lead(ticket) => ticket,
        _ => panic!("expected to lead"),
    }
}

#[test]
fn first_call_leads_and_later_ones_join_then_replay() {
    let t = Arc::new(Idempotency::new(Duration::from_secs(60), 1 << 20));
    let ticket = lead(&t, &req("k", b"x"), CallId::from(1));
    let Claim::Join { id, done } = t.claim(&req("k", b"x"), CallId::from(2)).unwrap() else {
        panic!("second call joins");
    };
    assert_eq!(id, CallId::from(1), "joiner reports the running call's id");
    ticket.end(answer(CallId::from(1), b"opened"));
    let got = done.borrow().clone().expect("joiner is told the outcome");
    assert_eq!(&got.as_ref().as_ref().unwrap().reply.payload[..], b"opened");
    let Claim::Replay(o) = t.claim(&req("k", b"x"), CallId::from(3)).unwrap() else {
        panic!("third call replays");
    };
    assert_eq!(o.as_ref().as_ref().unwrap().request_id, CallId::from(1));
    assert_eq!(t.replays(), 2);
}

#[test]
fn same_key_for_another_request_is_refused() {
    let t = Arc::new(Idempotency::new(Duration::from_secs(60), 1 << 20));
    let _ticket = lead(&t, &req("k", b"x"), CallId::from(1));
    let e = t
        .claim(&req("k", b"other"), CallId::from(2))
        .err()
        .expect("refused");
    assert_eq!(e.reason(), thingcall_proto::Reason::InvalidArgument);
    let mut other_method = req("k", b"x");
    other_method.method = "close".into();
    assert!(t.claim(&other_method, CallId::from(3)).is_err());
    let mut other_target = req("k", b"other");
    other_target.target = "dev-2".into();
    assert!(
        matches!(t.claim(&other_target, CallId::from(4)), Ok(Claim::Lead(_))),
        "keys are per target"
    );
}

#[test]
fn refusals_before_publishing_free_the_key() {
    let t = Arc::new(Idempotency::new(Duration::from_secs(60), 1 << 20));
    for (n, e) in [
        Error::DeviceOffline("dev-1".into()),
        Error::Overloaded(10),
        Error::BrokerUnavailable,
        Error::ShuttingDown,
    ]
    .into_iter()
    .enumerate()
    {
        lead(&t, &req("k", b"x"), CallId::from(n as u128)).end(failed(CallId::from(n as u128), e));
        assert!(t.is_empty(), "nothing kept after a refusal");
    }
    lead(&t, &req("k", b"x"), CallId::from(9)).end(failed(
        CallId::from(9),
        Error::DeviceTimeout {
            after: Duration::from_secs(1),
            accepted: false,
        },
    ));
    assert!(
        matches!(
            t.claim(&req("k", b"x"), CallId::from(10)),
            Ok(Claim::Replay(_))
        ),
        "a timeout is kept: the device may have run it"
    );
}

#[test]
fn a_dropped_ticket_frees_the_key_and_closes_joiners() {
    let t = Arc::new(Idempotency::new(Duration::from_secs(60), 1 << 20));
    let ticket = lead(&t, &req("k", b"x"), CallId::from(1));
    let Ok(Claim::Join { done, .. }) = t.claim(&req("k", b"x"), CallId::from(2)) else {
        panic!("joins");
    };
    drop(ticket);
    assert!(done.has_changed().is_err(), "joiner sees the sender gone");
    assert!(matches!(
        t.claim(&req("k", b"x"), CallId::from(3)),
        Ok(Claim::Lead(_))
    ));
}

#[test]
fn outcomes_expire_and_the_byte_budget_evicts_oldest_first() {
    let t = Arc::new(Idempotency::new(Duration::ZERO, 1 << 20));
    lead(&t, &req("k", b"x"), CallId::from(1)).end(answer(CallId::from(1), b"a"));
    assert!(t.is_empty(), "a zero window keeps nothing");

    let budget = 3 * (ENTRY_OVERHEAD + 64);
    let t = Arc::new(Idempotency::new(Duration::from_secs(60), budget));
    for n in 0..10u128 {
        let key = format!("k{n}");
        lead(&t, &req(&key, b"x"), CallId::from(n)).end(answer(CallId::from(n), b"0123456789"));
    }
    assert!(t.len() <= 3, "held {} outcomes over budget", t.len());
    assert!(matches!(
        t.claim(&req("k9", b"x"), CallId::from(99)),
        Ok(Claim::Replay(_))
    ));
    assert!(
        matches!(
            t.claim(&req("k0", b"x"), CallId::from(98)),
            Ok(Claim::Lead(_))
        ),
        "the oldest went first"
    );
}
