//! Asking the session about its link from outside, for a process that
//! may have been frozen (an AWS Lambda function between invocations):
//! verify the link with one round trip before publishing, or drop it and
//! reconnect at once.
//!
//! A verification re-sends a SUBSCRIBE of the replies filter (no retained
//! messages, allowed by every ACL that lets the gateway work) and resolves
//! on its SUBACK. A broker handles one client's packets in order, so by
//! then everything it sent before (a device going offline during the
//! freeze, say) has been handled too.

use tokio::sync::{mpsc, oneshot};

/// What the session is asked to do.
pub(crate) enum Command {
    /// Round trip to the broker; the sender resolves on its SUBACK.
    Verify(oneshot::Sender<()>),
    /// Drop the connection and reconnect now.
    Reconnect,
}

/// The link went down (or was never up) before the broker answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the MQTT link is down")]
pub struct LinkDown;

/// A handle on the session's link; cheap to clone.
#[derive(Clone)]
pub struct LinkControl {
    tx: mpsc::UnboundedSender<Command>,
}

impl LinkControl {
    pub(crate) fn new() -> (LinkControl, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LinkControl { tx }, rx)
    }

    /// Resolves once the broker has answered a round trip sent now;
    /// `LinkDown` when there is no session or it ends first. Unbounded:
    /// wrap it in a timeout (a half-open link never answers; the session's
    /// watchdog ends it after 1.5 x keep-alive).
    pub async fn verify(&self) -> Result<(), LinkDown> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Verify(tx)).map_err(|_| LinkDown)?;
        rx.await.map_err(|_| LinkDown)
    }

    /// Drops the connection and reconnects at once. Presence turns
    /// provisional until confirmed, as after any reconnect.
    pub fn reconnect(&self) {
        let _ = self.tx.send(Command::Reconnect);
    }
}

/// SUBSCRIBEs sent and SUBACKs received on one connection, and the
/// verifications waiting for theirs.
#[derive(Default)]
pub(crate) struct Verifications {
    sent: u64,
    acked: u64,
    waiting: Vec<(u64, oneshot::Sender<()>)>,
}

impl Verifications {
    /// A SUBSCRIBE was queued on this connection; gives its number.
    pub(crate) fn sent(&mut self) -> u64 {
        self.sent += 1;
        self.sent
    }

    /// `tx` resolves with the SUBACK of SUBSCRIBE number `n`.
    pub(crate) fn wait(&mut self, n: u64, tx: oneshot::Sender<()>) {
        self.waiting.push((n, tx));
    }

    /// A SUBACK arrived (they come in order).
    pub(crate) fn acked(&mut self) {
        self.acked += 1;
        let acked = self.acked;
        for (_, tx) in self.waiting.extract_if(.., |(n, _)| *n <= acked) {
            let _ = tx.send(());
        }
    }

    /// The connection ended: waiting verifications fail, counts restart.
    pub(crate) fn reset(&mut self) {
        *self = Verifications::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_resolves_with_its_own_suback_not_an_earlier_one() {
        let mut v = Verifications::default();
        v.sent(); // the subscriptions, still unanswered
        let (tx, mut rx) = oneshot::channel();
        let n = v.sent();
        v.wait(n, tx);
        v.acked();
        assert!(rx.try_recv().is_err(), "an earlier SUBACK");
        v.acked();
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn a_lost_connection_fails_what_waits() {
        let mut v = Verifications::default();
        let (tx, mut rx) = oneshot::channel();
        let n = v.sent();
        v.wait(n, tx);
        v.reset();
        assert!(matches!(
            rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
