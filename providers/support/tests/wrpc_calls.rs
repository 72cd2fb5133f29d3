//! Calls over wRPC's NATS transport as this project builds it (the compact form of
//! scripts/patches/wrpc-transport-nats-0.29.0.diff), against a real NATS server: what every call
//! between the host, the components and the providers goes through.

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use orders_test_nats::NatsServer;
use wrpc_transport::{InvokeExt as _, ServeExt as _};
use wrpc_transport_nats::Client;

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send>>;

const NO_NESTED: [[Option<usize>; 0]; 0] = [];

/// A caller and a callee on connections of their own, and a subscriber of `>` that sees every
/// message the server routes from the moment it is made.
struct Lattice {
    caller: Client,
    callee: Client,
    callee_connection: async_nats::Client,
    wiretap: Option<async_nats::Subscriber>,
    server: NatsServer,
}

impl Lattice {
    async fn start() -> Self {
        let mut lattice = Self::untapped().await;
        let tap = connect(&lattice.server).await;
        let mut wiretap = tap.subscribe(">").await.expect("`>` can be subscribed");
        round_trip(&tap).await;
        // The round trip's own message, seen by the tap too.
        wiretap.next().await;
        lattice.wiretap = Some(wiretap);
        lattice
    }

    /// Without the subscriber of `>`, which would count as a responder to every subject.
    async fn untapped() -> Self {
        let server = NatsServer::start().await;
        let callee_connection = connect(&server).await;
        Self {
            caller: Client::new(connect(&server).await, "test", None)
                .await
                .unwrap(),
            callee: Client::new(callee_connection.clone(), "test", None)
                .await
                .unwrap(),
            callee_connection,
            wiretap: None,
            server,
        }
    }

    /// Once this returns, the server routes invocations to what the callee serves.
    async fn callee_is_serving(&self) {
        round_trip(&self.callee_connection).await;
    }

    /// The messages seen so far, once the server has been quiet for a while.
    async fn messages_seen(&mut self) -> Vec<async_nats::Message> {
        let mut seen = Vec::new();
        let wiretap = self.wiretap.as_mut().expect("a tapped lattice");
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), wiretap.next()).await
        {
            if !message.subject.starts_with(ROUND_TRIP) {
                seen.push(message);
            }
        }
        seen
    }

    /// The subjects of the messages seen so far, in order.
    async fn subjects_seen(&mut self) -> Vec<String> {
        self.messages_seen()
            .await
            .iter()
            .map(|message| message.subject.to_string())
            .collect()
    }
}

const ROUND_TRIP: &str = "round-trip.";

/// Returns once the server has taken every subscription made before on `connection`: the server
/// handles one connection's operations in order, and flushing a connection does not wait for it.
async fn round_trip(connection: &async_nats::Client) {
    let subject = format!("{ROUND_TRIP}{}", connection.new_inbox());
    let mut echo = connection.subscribe(subject.clone()).await.unwrap();
    connection.publish(subject, Bytes::new()).await.unwrap();
    echo.next().await.expect("the round trip comes back");
}

async fn connect(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(&server.url)
        .await
        .expect("the test server takes connections")
}

#[tokio::test]
async fn a_call_whose_parameters_fit_in_one_message_is_the_invocation_and_its_results() {
    let mut lattice = Lattice::start().await;
    let invocations = lattice
        .callee
        .serve_values::<(u32, String), (String,)>(
            "text",
            "repeat",
            Vec::<Box<[Option<usize>]>>::new(),
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some((_, (times, text), _, respond)) = invocations.try_next().await.unwrap() {
            respond((text.repeat(times as usize),)).await.unwrap();
        }
    });
    lattice.callee_is_serving().await;

    let (repeated,) = lattice
        .caller
        .invoke_values_blocking::<_, _, (String,)>(
            None,
            "text",
            "repeat",
            (3u32, "ab".to_string()),
            NO_NESTED,
        )
        .await
        .expect("the call is answered");

    assert_eq!(repeated, "ababab");
    let subjects = lattice.subjects_seen().await;
    assert_eq!(subjects.len(), 2, "messages of one call: {subjects:?}");
    assert!(subjects[0].ends_with("text.repeat"), "{subjects:?}");
    assert!(subjects[1].ends_with(".results"), "{subjects:?}");
}

#[tokio::test]
async fn a_function_without_parameters_or_results_is_still_called_and_answered() {
    let mut lattice = Lattice::start().await;
    let invocations = lattice
        .callee
        .serve_values::<(), ()>("clock", "tick", Vec::<Box<[Option<usize>]>>::new())
        .await
        .unwrap();
    let (called, mut was_called) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some((_, (), _, respond)) = invocations.try_next().await.unwrap() {
            called.send(()).await.unwrap();
            respond(()).await.unwrap();
        }
    });
    lattice.callee_is_serving().await;

    tokio::time::timeout(
        Duration::from_secs(5),
        lattice
            .caller
            .invoke_values_blocking::<_, (), ()>(None, "clock", "tick", (), NO_NESTED),
    )
    .await
    .expect("the call ends")
    .expect("the call is answered");

    assert_eq!(was_called.try_recv(), Ok(()));
    // The empty results are told by the one (empty) message on the results subject.
    assert_eq!(lattice.messages_seen().await.len(), 2);
}

/// Serves `upload.describe`: a name and a byte stream inside one record (here a tuple)
/// parameter, the shape of an HTTP request and its body; answers with the name and the sizes of
/// the chunks it received.
async fn serve_uploads(lattice: &Lattice) {
    let invocations = lattice
        .callee
        .serve_values::<((String, ByteStream),), (String,)>(
            "upload",
            "describe",
            vec![Box::from([Some(0), Some(1)])],
        )
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut invocations = pin!(invocations);
        while let Some((_, ((name, chunks),), receiving, respond)) =
            invocations.try_next().await.unwrap()
        {
            let receiving = receiving.map(tokio::spawn);
            let sizes: Vec<String> = chunks.map(|chunk| chunk.len().to_string()).collect().await;
            if let Some(receiving) = receiving {
                receiving.await.unwrap().unwrap();
            }
            respond((format!("{name}: {}", sizes.join("+")),))
                .await
                .unwrap();
        }
    });
    lattice.callee_is_serving().await;
}

async fn describe_upload(lattice: &Lattice, chunks: ByteStream) -> String {
    let (description,) = tokio::time::timeout(
        Duration::from_secs(5),
        lattice.caller.invoke_values_blocking::<_, _, (String,)>(
            None,
            "upload",
            "describe",
            (("letters".to_string(), chunks),),
            NO_NESTED,
        ),
    )
    .await
    .expect("the call ends")
    .expect("the call is answered");
    description
}

#[tokio::test]
async fn a_stream_still_being_written_reaches_the_callee_through_the_inbox_its_handshake_names() {
    let mut lattice = Lattice::start().await;
    serve_uploads(&lattice).await;

    // The chunks come one by one after the call began, as a body still being received would.
    let chunks: ByteStream = Box::pin(futures::stream::iter([&b"abc"[..], b"defg", b"h"]).then(
        |bytes| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Bytes::from_static(bytes)
        },
    ));

    assert_eq!(describe_upload(&lattice, chunks).await, "letters: 3+4+1");
    let seen = lattice.messages_seen().await;
    let handshakes = seen
        .iter()
        .filter(|message| message.reply.is_some() && message.payload.is_empty())
        .count();
    assert_eq!(handshakes, 1, "the callee names its inbox once");
    assert!(
        seen.iter()
            .any(|message| message.subject.contains(".params.")),
        "the chunks go to the callee's parameter subjects"
    );
}

/// An HTTP request's body read whole before the call: it travels in the invocation.
#[tokio::test]
async fn a_stream_complete_when_the_call_is_made_goes_inline_with_the_invocation() {
    let mut lattice = Lattice::start().await;
    serve_uploads(&lattice).await;

    let chunks: ByteStream = Box::pin(futures::stream::iter(
        [&b"abc"[..], b"defg", b"h"].map(Bytes::from_static),
    ));

    // One chunk of all of the bytes, as they were in hand.
    assert_eq!(describe_upload(&lattice, chunks).await, "letters: 8");
    let subjects = lattice.subjects_seen().await;
    assert!(
        subjects.iter().all(|subject| !subject.contains(".params")),
        "nothing is sent apart: {subjects:?}"
    );
    // The invocation, the callee's handshake (its function has a stream parameter, which it
    // cannot know is complete before it reads the invocation) and the results.
    assert_eq!(subjects.len(), 3, "{subjects:?}");
}

#[tokio::test]
async fn a_call_nobody_serves_fails_at_once_instead_of_waiting_for_results() {
    let lattice = Lattice::untapped().await;

    let call = tokio::time::timeout(
        Duration::from_secs(5),
        lattice.caller.invoke_values_blocking::<_, (u32,), (u32,)>(
            None,
            "nobody",
            "here",
            (1,),
            NO_NESTED,
        ),
    )
    .await
    .expect("NATS answers `no responders` at once");

    let error = format!("{:#}", call.expect_err("nobody answers"));
    assert!(error.contains("not connected"), "{error}");
}
