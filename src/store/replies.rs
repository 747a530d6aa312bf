//! Answers from the writer thread to the tasks awaiting them: one wake-up per thread per
//! commit, not one per answer.
//!
//! Waking a task that lives on another thread costs a system call (the thread's runtime is
//! unparked through an eventfd) and often a context switch. The writer answers a batch of
//! dozens of alarms at once, nearly all awaited by the same two or three HTTP worker
//! threads; so each of those threads has a mailbox, served by a task of its own
//! ([`serve_this_thread`]). The writer drops a batch's answers into each mailbox and wakes
//! its task once; the task hands the answers to the awaiting requests on its own thread,
//! where a wake-up is a push onto a local queue. A thread without a mailbox (the executor's
//! runtime, tests) is answered directly.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};

use super::StoreError;
use super::commands::Done;

/// What a command is answered with.
pub(crate) type Answer = Result<Done, StoreError>;
/// An answer and where it goes.
type Addressed = (oneshot::Sender<Answer>, Answer);

/// Where a command's answer goes.
#[derive(Debug)]
pub(crate) struct Reply {
    to: oneshot::Sender<Answer>,
    via: Option<Arc<Mailbox>>,
}

impl Reply {
    /// A reply to the calling thread: through its mailbox when it has one.
    pub(crate) fn new() -> (Self, oneshot::Receiver<Answer>) {
        let (to, answer) = oneshot::channel();
        // `try_with`: a thread tearing down its locals is answered directly.
        let via = MAILBOX
            .try_with(|mailbox| mailbox.borrow().clone())
            .ok()
            .flatten();
        (Self { to, via }, answer)
    }

    /// A reply that goes straight to the caller (tests of the writer).
    #[cfg(test)]
    pub(crate) fn direct() -> (Self, oneshot::Receiver<Answer>) {
        let (to, answer) = oneshot::channel();
        (Self { to, via: None }, answer)
    }
}

/// Answers collected for one batch, delivered together by [`Deliveries::flush`].
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    by_mailbox: Vec<(Arc<Mailbox>, Vec<Addressed>)>,
}

impl Deliveries {
    pub(crate) fn push(&mut self, reply: Reply, answer: Answer) {
        let Some(mailbox) = reply.via else {
            // The receiver may be gone (a request cancelled): nobody to tell.
            let _ = reply.to.send(answer);
            return;
        };
        match self
            .by_mailbox
            .iter_mut()
            .find(|(known, _)| Arc::ptr_eq(known, &mailbox))
        {
            Some((_, answers)) => answers.push((reply.to, answer)),
            None => self.by_mailbox.push((mailbox, vec![(reply.to, answer)])),
        }
    }

    /// Hands every answer over: each mailbox once.
    pub(crate) fn flush(&mut self) {
        for (mailbox, answers) in self.by_mailbox.drain(..) {
            mailbox.deliver(answers);
        }
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Answers waiting for one thread's mailbox task.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    inbox: Mutex<Inbox>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Inbox {
    answers: Vec<Addressed>,
    /// The mailbox task is gone: answer directly from now on.
    closed: bool,
}

impl Mailbox {
    fn deliver(&self, mut answers: Vec<Addressed>) {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if inbox.closed {
            drop(inbox);
            send_all(answers);
            return;
        }
        inbox.answers.append(&mut answers);
        drop(inbox);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<Addressed> {
        std::mem::take(
            &mut self
                .inbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .answers,
        )
    }
}

fn send_all(answers: Vec<Addressed>) {
    for (to, answer) in answers {
        let _ = to.send(answer);
    }
}

thread_local! {
    /// This thread's mailbox, if it serves one.
    static MAILBOX: RefCell<Option<Arc<Mailbox>>> = const { RefCell::new(None) };
}

/// Gives the calling thread a mailbox, served by a task spawned on its `LocalSet` (an
/// actix-web worker's, called from its app factory). Idempotent per thread.
///
/// # Panics
/// Outside a `LocalSet` (tokio's `spawn_local`).
pub fn serve_this_thread() {
    if MAILBOX.with_borrow(Option::is_some) {
        return;
    }
    let mailbox = Arc::new(Mailbox::default());
    // Built before the task is spawned: if the task is dropped unpolled (its runtime
    // shutting down), the guard still closes the mailbox and answers what is in it.
    let serving = Serving(Arc::clone(&mailbox));
    tokio::task::spawn_local(async move {
        loop {
            serving.0.ready.notified().await;
            send_all(serving.0.take());
        }
    });
    // Only once the task exists does this thread's traffic go through it.
    MAILBOX.set(Some(mailbox));
}

/// Closes the mailbox when its task ends (its thread's runtime shutting down): whatever
/// is in it, and whatever comes later, is answered directly.
struct Serving(Arc<Mailbox>);

impl Drop for Serving {
    fn drop(&mut self) {
        let answers = {
            let mut inbox = self.0.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            inbox.closed = true;
            std::mem::take(&mut inbox.answers)
        };
        send_all(answers);
        // `try_with`: the thread may be exiting, its locals already gone.
        let _ = MAILBOX.try_with(|mailbox| {
            if let Ok(mut mailbox) = mailbox.try_borrow_mut()
                && mailbox
                    .as_ref()
                    .is_some_and(|own| Arc::ptr_eq(own, &self.0))
            {
                *mailbox = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers through a mailbox reach their receivers on the mailbox's thread; once its
    /// task is gone they are answered directly.
    #[test]
    fn answers_reach_their_receivers_through_the_mailbox_and_after_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let (replies, answers): (Vec<_>, Vec<_>) = local.block_on(&runtime, async {
            serve_this_thread();
            serve_this_thread();
            (0..3).map(|_| Reply::new()).unzip()
        });
        assert!(replies.iter().all(|reply| reply.via.is_some()));
        let mailbox = replies[0].via.clone().unwrap();
        let writer = std::thread::spawn(move || {
            let mut deliveries = Deliveries::default();
            for (id, reply) in replies.into_iter().enumerate() {
                deliveries.push(reply, Ok(Some(id as i64)));
            }
        });
        let got = local.block_on(&runtime, async {
            let mut got = Vec::new();
            for answer in answers {
                got.push(answer.await.unwrap().unwrap());
            }
            got
        });
        writer.join().unwrap();
        assert_eq!(got, [Some(0), Some(1), Some(2)]);

        // The task ends with its LocalSet; the mailbox is closed and the thread has none.
        drop(local);
        assert!(MAILBOX.with_borrow(Option::is_none));
        let (to, answer) = oneshot::channel();
        mailbox.deliver(vec![(to, Ok(Some(7)))]);
        assert_eq!(answer.blocking_recv().unwrap().unwrap(), Some(7));
    }

    /// A mailbox whose task is dropped before it ever ran (its runtime shut down at once)
    /// is closed all the same: nothing is left waiting in it.
    #[test]
    fn a_mailbox_whose_task_never_ran_is_closed() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let (reply, answer) = {
            let _runtime = runtime.enter();
            let _local = local.enter();
            serve_this_thread();
            Reply::new()
        };
        let mailbox = reply.via.clone().expect("served through the mailbox");
        drop(local);
        assert!(MAILBOX.with_borrow(Option::is_none));
        assert!(Reply::new().0.via.is_none());
        let mut deliveries = Deliveries::default();
        deliveries.push(reply, Ok(Some(3)));
        drop(deliveries);
        assert_eq!(answer.blocking_recv().unwrap().unwrap(), Some(3));
        assert!(mailbox.take().is_empty());
    }
}
