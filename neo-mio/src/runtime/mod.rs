//! The event loop: hosts one neo-core node on real sockets and a real
//! clock.
//!
//! One thread, one [`mio::Poll`]. Every turn: wait for socket readiness or
//! the node's next wake-up, read every ready socket until it would block
//! (at most [`READ_TURN_BYTES_MAX`] a turn: what is left is read at the
//! next turn, so that one peer cannot starve the others) and feed the
//! decoded packets to the node, drain the node's outputs
//! (connections to open, packets queued per connection, closes, logs),
//! then — if the node asked for durability during the turn — sync its store
//! once for everything it wrote (group commit), and finally write what is
//! queued. A connection only exists for the node once both NEO handshakes
//! are exchanged; a peer that sends anything else is dropped without the
//! node hearing of it. Writes never block: a peer that does not read keeps
//! its bytes queued (WRITABLE interest), and one that lets more than
//! [`conn::MAX_QUEUED`] pile up is disconnected.
//!
//! Reconnection and its backoff are the node's business (its bootstrap
//! throttles attempts); the runtime only reports failures.

mod conn;
pub use conn::{MAX_QUEUED, READ_TURN_BYTES_MAX};

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hashbrown::HashMap;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use neo_core::admin::Admin;
use neo_core::client::Client;
use neo_core::master::Master;
use neo_core::storage::store::Store;
use neo_core::storage::Storage;
use neo_core::{ConnId, Input, Level, Node, Output, Time, WallTime};
use neo_proto::Address;

use conn::{Conn, End, SocketState};

/// A node the runtime can host: any neo-core node, plus the storage's
/// durability callback and the master's wall clock.
pub trait Hosted: Node {
    /// Everything written to the store so far must become durable, then
    /// the node is told (storage only).
    fn sync_store(&mut self, _now: Time) {}

    /// The wall clock, read before every input (the master: TIDs and node
    /// timestamps).
    fn observe_wall_time(&mut self, _wall: WallTime) {}
}

impl Hosted for Master {
    fn observe_wall_time(&mut self, wall: WallTime) {
        Master::observe_wall_time(self, wall)
    }
}
impl Hosted for Admin {}
impl Hosted for Client {}
impl<S: Store> Hosted for Storage<S> {
    fn sync_store(&mut self, now: Time) {
        Storage::sync_store(self, now)
    }
}

/// The monotonic clock as neo-core's [`Time`]: nanoseconds since the
/// process first read it. Timers use it, so that a wall clock set forward
/// or back (NTP) neither fires nor stalls them.
pub fn now() -> Time {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    Time::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// The wall clock as neo-core's [`WallTime`] (before the UNIX epoch: the
/// epoch).
pub fn wall_now() -> WallTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    WallTime::from_unix_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// The first socket address `addr` resolves to.
pub fn resolve(addr: &Address) -> io::Result<SocketAddr> {
    let host = std::str::from_utf8(&addr.host)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "host is not UTF-8"))?;
    (host, addr.port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} does not resolve to any address"),
        )
    })
}

/// The NEO address of a socket address.
pub fn address_of(addr: SocketAddr) -> Address {
    Address {
        host: addr.ip().to_string().into(),
        port: addr.port(),
    }
}

/// How the node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub reason: String,
}

const LISTENER: Token = Token(0);
/// Bytes read from a socket at once.
const READ_CHUNK: usize = 256 * 1024;

/// Most connections a node keeps: past it, new ones are accepted and
/// closed at once (the node goes on serving those it has, and does not
/// run out of file descriptors for its own connections).
pub const CONNS_COUNT_MAX: usize = 4096;

/// A peer that has not completed the NEO handshake within this is dropped:
/// connections that say nothing cannot pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The event loop hosting node `N`.
pub struct Runtime<N: Hosted> {
    node: N,
    /// Name used in log records ("master", "storage S1", ...).
    name: String,
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
    tokens: HashMap<ConnId, Token>,
    next_token: usize,
    accepted: u64,
    /// Connections with bytes queued by this turn.
    dirty: Vec<Token>,
    /// Connections left with bytes to read by the last turn's cap.
    readable_again: Vec<Token>,
    /// [`CONNS_COUNT_MAX`] and [`HANDSHAKE_TIMEOUT`] unless set.
    conns_max: usize,
    handshake_timeout: Duration,
    sync_requested: bool,
    exit: Option<Exit>,
    /// Node events (client answers) for the embedding code.
    node_events: VecDeque<N::Event>,
    scratch: Vec<u8>,
}

impl<N: Hosted> Runtime<N> {
    /// Hosts `node`, accepting connections on `listener` if given (bound
    /// beforehand, so that the node's configuration can carry the actual
    /// address).
    pub fn new(
        node: N,
        name: impl Into<String>,
        listener: Option<TcpListener>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = listener;
        if let Some(listener) = &mut listener {
            poll.registry()
                .register(listener, LISTENER, Interest::READABLE)?;
        }
        let mut runtime = Runtime {
            node,
            name: name.into(),
            poll,
            events: Events::with_capacity(1024),
            listener,
            conns: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 1,
            accepted: 0,
            dirty: Vec::new(),
            readable_again: Vec::new(),
            conns_max: CONNS_COUNT_MAX,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            sync_requested: false,
            exit: None,
            node_events: VecDeque::new(),
            scratch: vec![0; READ_CHUNK],
        };
        // A new node may already want connections.
        runtime.drain_outputs();
        runtime.flush_dirty();
        Ok(runtime)
    }

    pub fn node(&self) -> &N {
        &self.node
    }

    /// Keeps at most `max` connections (default [`CONNS_COUNT_MAX`]).
    pub fn set_connections_max(&mut self, max: usize) {
        self.conns_max = max;
    }

    /// Drops peers silent that long (default [`HANDSHAKE_TIMEOUT`]).
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Calls into the node (application commands such as a client's load)
    /// and carries out what it asks as a result, except the writes: they go
    /// out at the next [`turn`](Self::turn) (or [`flush`](Self::flush)), so
    /// that the packets of several calls in a row (a transaction's stores)
    /// leave in one write per connection and arrive in one read.
    pub fn with_node<T>(&mut self, f: impl FnOnce(&mut N, Time) -> T) -> T {
        self.node.observe_wall_time(wall_now());
        let result = f(&mut self.node, now());
        self.carry_out_outputs();
        result
    }

    /// Writes what is queued, without waiting for anything: for callers
    /// that will not turn the loop soon (an abort that must release locks).
    pub fn flush(&mut self) {
        self.flush_dirty();
    }

    /// The next event the node produced for the embedding code.
    pub fn next_event(&mut self) -> Option<N::Event> {
        self.node_events.pop_front()
    }

    /// Runs until the node exits.
    pub fn run(&mut self) -> io::Result<Exit> {
        loop {
            if let Some(exit) = &self.exit {
                return Ok(exit.clone());
            }
            self.turn(None)?;
        }
    }

    /// One turn of the loop, waiting at most `max_wait` (and never past the
    /// node's next wake-up) for something to happen.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        // What with_node queued.
        self.flush_dirty();
        let mut wait = self
            .node
            .poll_timeout()
            .map(|at| at.saturating_since(now()));
        if let Some(max) = max_wait {
            wait = Some(wait.map_or(max, |w| w.min(max)));
        }
        if !self.readable_again.is_empty() {
            wait = Some(Duration::ZERO);
        }
        if let Some(deadline) = self.next_handshake_deadline() {
            let until = deadline.saturating_duration_since(std::time::Instant::now());
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        let mut ready: Vec<(Token, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable() || e.is_write_closed() || e.is_error(),
                )
            })
            .collect();
        for token in std::mem::take(&mut self.readable_again) {
            if !ready
                .iter()
                .any(|(t, readable, _)| *t == token && *readable)
            {
                ready.push((token, true, false));
            }
        }
        for (token, readable, writable) in ready {
            if token == LISTENER {
                self.accept_all();
                continue;
            }
            if writable {
                self.on_writable(token);
            }
            if readable {
                self.on_readable(token);
            }
        }
        self.drop_silent_peers();
        if self.node.poll_timeout().is_some_and(|at| at <= now()) {
            self.input(Input::Timeout);
        }
        self.after_input();
        Ok(())
    }

    /// When the oldest connection still without the peer's handshake
    /// times out.
    fn next_handshake_deadline(&self) -> Option<std::time::Instant> {
        self.conns
            .values()
            .filter(|c| c.phase == SocketState::Handshaking)
            .map(|c| c.since + self.handshake_timeout)
            .min()
    }

    /// Drops connections whose peer did not complete the handshake in
    /// time (the node hears of its own outgoing ones as
    /// failed connections).
    fn drop_silent_peers(&mut self) {
        let now = std::time::Instant::now();
        let silent: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.phase == SocketState::Handshaking && c.since + self.handshake_timeout <= now
            })
            .map(|(&token, _)| token)
            .collect();
        for token in silent {
            if let Some(conn) = self.conns.get(&token) {
                let peer = conn.peer;
                self.log(
                    Level::Info,
                    &format!("no NEO handshake from {peer}: dropped"),
                );
            }
            self.drop_conn(token, true);
        }
    }

    /// Carries out the node's outputs, the store sync they asked for, and
    /// the writes.
    fn after_input(&mut self) {
        self.carry_out_outputs();
        self.flush_dirty();
    }

    /// The node's outputs and the store sync they asked for; writes are
    /// only queued.
    fn carry_out_outputs(&mut self) {
        self.drain_outputs();
        if self.sync_requested {
            self.sync_requested = false;
            self.node.sync_store(now());
            self.drain_outputs();
        }
    }

    /// Feeds the node one input, with both clocks read now.
    fn input(&mut self, input: Input) {
        self.node.observe_wall_time(wall_now());
        self.node.handle(now(), input);
    }

    fn log(&self, level: Level, message: &str) {
        crate::log::log(level, &self.name, message);
    }

    // ------------------------------------------------------------ sockets

    fn register(&mut self, mut conn: Conn) {
        let token = Token(self.next_token);
        self.next_token += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = self
            .poll
            .registry()
            .register(&mut conn.stream, token, interest)
        {
            self.log(Level::Error, &format!("cannot watch a socket: {error}"));
            self.report_failure(&conn);
            return;
        }
        conn.wants_writable = true;
        self.tokens.insert(conn.id, token);
        self.conns.insert(token, conn);
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) if self.conns.len() >= self.conns_max => {
                    let max = self.conns_max;
                    self.log(
                        Level::Warn,
                        &format!("{max} connections already: refusing {peer}"),
                    );
                    drop(stream);
                }
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        self.log(Level::Warn, &format!("TCP_NODELAY on {peer}: {error}"));
                    }
                    self.accepted += 1;
                    let id = ConnId::incoming(self.accepted);
                    self.register(Conn::new(id, stream, peer, SocketState::Handshaking));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // Out of file descriptors, typically: keep serving the
                    // connections we have and try again on the next event.
                    self.log(Level::Error, &format!("accept: {error}"));
                    return;
                }
            }
        }
    }

    fn connect(&mut self, id: ConnId, addr: &Address) {
        let result = resolve(addr).and_then(|peer| Ok((TcpStream::connect(peer)?, peer)));
        match result {
            Ok((stream, peer)) => {
                self.register(Conn::new(id, stream, peer, SocketState::Connecting))
            }
            Err(error) => {
                self.log(Level::Debug, &format!("cannot connect to {addr}: {error}"));
                self.input(Input::ConnectFailed { conn: id });
            }
        }
    }

    fn on_writable(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.phase == SocketState::Connecting {
            match conn.check_connected() {
                Ok(false) => return,
                Ok(true) => {
                    conn.phase = SocketState::Handshaking;
                    let _ = conn.stream.set_nodelay(true);
                }
                Err(error) => {
                    let message = format!("cannot connect to {}: {error}", conn.peer);
                    self.log(Level::Debug, &message);
                    self.drop_conn(token, true);
                    return;
                }
            }
        }
        self.flush_conn(token);
    }

    fn on_readable(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.phase == SocketState::Connecting {
            // Readable before writable: the connection was refused.
            if conn.check_connected().unwrap_or(false) {
                conn.phase = SocketState::Handshaking;
            } else {
                self.drop_conn(token, true);
                return;
            }
        }
        let outcome = conn.read(&mut self.scratch);
        if outcome.more {
            self.readable_again.push(token);
        }
        let id = conn.id;
        let peer = conn.peer;
        let closing = conn.phase == SocketState::Closing;
        if closing {
            // The node forgot it: what the peer still says is ignored.
            if outcome.end.is_some() {
                self.drop_conn(token, false);
            }
            return;
        }
        if outcome.opened {
            conn.phase = SocketState::Open;
            let input = if id.is_incoming() {
                Input::Accepted { conn: id }
            } else {
                Input::Connected { conn: id }
            };
            self.input(input);
        }
        for frame in outcome.frames {
            self.input(Input::Packet {
                conn: id,
                msg_id: frame.msg_id,
                packet: frame.packet,
            });
            // The node may have closed it on this packet: it must hear
            // nothing more of it.
            self.drain_outputs();
            if self
                .conns
                .get(&token)
                .is_none_or(|c| c.phase == SocketState::Closing)
            {
                if outcome.end.is_some() {
                    self.drop_conn(token, false);
                }
                return;
            }
        }
        match outcome.end {
            None => {}
            Some(End::Closed(error)) => {
                if let Some(error) = error {
                    self.log(Level::Debug, &format!("connection with {peer}: {error}"));
                }
                self.drop_conn(token, true);
            }
            Some(End::Invalid(error)) => {
                self.log(
                    Level::Warn,
                    &format!("closing the connection with {peer}: {error}"),
                );
                self.drop_conn(token, true);
            }
        }
    }

    /// Tells the node a connection it knows of is gone.
    fn report_failure(&mut self, conn: &Conn) {
        let input = match conn.phase {
            SocketState::Closing => return,
            SocketState::Open => Input::Closed { conn: conn.id },
            SocketState::Connecting | SocketState::Handshaking if !conn.id.is_incoming() => {
                Input::ConnectFailed { conn: conn.id }
            }
            // An incoming connection the node never saw.
            SocketState::Connecting | SocketState::Handshaking => return,
        };
        self.input(input);
    }

    /// Forgets a connection (its socket closes when dropped), telling the
    /// node if `report`.
    fn drop_conn(&mut self, token: Token, report: bool) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        self.tokens.remove(&conn.id);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if report {
            self.report_failure(&conn);
        }
    }

    fn flush_conn(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.phase == SocketState::Connecting {
            return;
        }
        match conn.flush() {
            Ok(true) => {
                if conn.phase == SocketState::Closing {
                    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                    self.drop_conn(token, false);
                    return;
                }
                if conn.wants_writable {
                    conn.wants_writable = false;
                    let _ = self.poll.registry().reregister(
                        &mut conn.stream,
                        token,
                        Interest::READABLE,
                    );
                }
            }
            Ok(false) => {
                if conn.queued() > conn::MAX_QUEUED {
                    let message = format!(
                        "{} does not read what we send ({} bytes queued): disconnecting",
                        conn.peer,
                        conn.queued()
                    );
                    self.log(Level::Warn, &message);
                    self.drop_conn(token, true);
                    return;
                }
                if !conn.wants_writable {
                    conn.wants_writable = true;
                    let _ = self.poll.registry().reregister(
                        &mut conn.stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
            }
            Err(error) => {
                let message = format!("connection with {}: {error}", conn.peer);
                self.log(Level::Debug, &message);
                self.drop_conn(token, true);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while !self.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for token in dirty {
                self.flush_conn(token);
            }
            // Reporting a broken connection may have produced outputs.
            self.drain_outputs();
        }
    }

    // ------------------------------------------------------------ outputs

    fn drain_outputs(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Connect { conn, addr } => self.connect(conn, &addr),
                Output::Send {
                    conn,
                    msg_id,
                    packet,
                } => {
                    let Some(&token) = self.tokens.get(&conn) else {
                        continue; // gone; the node hears or heard of it
                    };
                    let conn = self.conns.get_mut(&token).unwrap();
                    if conn.phase == SocketState::Closing {
                        continue;
                    }
                    conn.queue(msg_id, &packet);
                    self.dirty.push(token);
                }
                Output::Close { conn } => {
                    if let Some(&token) = self.tokens.get(&conn) {
                        let conn = self.conns.get_mut(&token).unwrap();
                        if conn.phase == SocketState::Connecting {
                            self.drop_conn(token, false);
                        } else {
                            conn.phase = SocketState::Closing;
                            self.dirty.push(token);
                        }
                    }
                }
                Output::SyncStore => self.sync_requested = true,
                Output::Log { level, message } => self.log(level, &message),
                Output::Exit { reason } => {
                    self.log(Level::Info, &format!("exiting: {reason}"));
                    self.exit.get_or_insert(Exit { reason });
                }
                Output::Event(event) => self.node_events.push_back(event),
            }
        }
    }
}
