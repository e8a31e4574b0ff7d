//! A simulated process: one node state machine (or the operator's tool),
//! whether it is alive, and how it restarts.

use std::collections::VecDeque;

use neo_core::admin::{Admin, AdminConfig};
use neo_core::client::{Client, ClientConfig, ClientEvent};
use neo_core::master::{Master, MasterConfig};
use neo_core::storage::memory::MemoryStore;
use neo_core::storage::{Storage, StorageConfig};
use neo_core::{ConnId, Input, Level, Node, Output, Time, WallTime};
use neo_proto::{Address, Packet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    Master,
    Storage,
    Admin,
    Client,
    Ctl,
}

/// Outputs of any node kind, as the simulator routes them.
#[derive(Debug)]
pub enum SimOutput {
    Connect {
        conn: ConnId,
        addr: Address,
    },
    Send {
        conn: ConnId,
        msg_id: u32,
        packet: Packet,
    },
    Close {
        conn: ConnId,
    },
    SyncStore,
    Log {
        level: Level,
        message: String,
    },
    Exit {
        reason: String,
    },
    /// The operator's tool got an answer.
    CtlAnswer {
        packet: Packet,
    },
    /// A client tells its application something.
    ClientEvent(ClientEvent),
}

fn convert<E>(output: Output<E>) -> Option<SimOutput> {
    Some(match output {
        Output::Connect { conn, addr } => SimOutput::Connect { conn, addr },
        Output::Send {
            conn,
            msg_id,
            packet,
        } => SimOutput::Send {
            conn,
            msg_id,
            packet,
        },
        Output::Close { conn } => SimOutput::Close { conn },
        Output::SyncStore => SimOutput::SyncStore,
        Output::Log { level, message } => SimOutput::Log { level, message },
        Output::Exit { reason, .. } => SimOutput::Exit { reason },
        Output::Event(_) => return None,
    })
}

/// A machine's wall clock: the simulation's time (which starts at a real
/// date, [`super::EPOCH`]) moved by the machine's offset.
pub fn wall_time(now: Time, offset_ns: i64) -> WallTime {
    WallTime::from_unix_nanos(now.as_nanos()).shifted(offset_ns)
}

/// The operator's `neoctl`: one connection per request, no identification.
#[derive(Debug, Default)]
pub struct Ctl {
    next: u64,
    waiting: Vec<(ConnId, Packet)>,
    outputs: VecDeque<SimOutput>,
}

impl Ctl {
    fn request(&mut self, addr: Address, packet: Packet) {
        self.next += 1;
        let conn = ConnId::outgoing(self.next);
        self.waiting.push((conn, packet));
        self.outputs.push_back(SimOutput::Connect { conn, addr });
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Connected { conn } => {
                if let Some((_, packet)) = self.waiting.iter().find(|(c, _)| *c == conn) {
                    let packet = packet.clone();
                    self.outputs.push_back(SimOutput::Send {
                        conn,
                        msg_id: 0,
                        packet,
                    });
                }
            }
            Input::Packet { conn, packet, .. } => {
                self.waiting.retain(|(c, _)| *c != conn);
                self.outputs.push_back(SimOutput::CtlAnswer { packet });
                self.outputs.push_back(SimOutput::Close { conn });
            }
            Input::ConnectFailed { conn } | Input::Closed { conn } => {
                if self.waiting.iter().any(|(c, _)| *c == conn) {
                    self.waiting.retain(|(c, _)| *c != conn);
                    self.outputs.push_back(SimOutput::CtlAnswer {
                        packet: Packet::error(neo_proto::ErrorCode::NotReady, "connection closed"),
                    });
                }
            }
            Input::Accepted { .. } | Input::Timeout => {}
        }
    }
}

pub enum Machine {
    Master(Box<Master>),
    Client(Box<Client>),
    Storage(Box<Storage<MemoryStore>>),
    Admin(Box<Admin>),
    Ctl(Ctl),
}

pub struct SimNode {
    pub name: String,
    pub kind: NodeKind,
    /// Index among nodes of its kind.
    pub index: usize,
    pub address: Option<Address>,
    pub machine: Machine,
    pub alive: bool,
    /// Stopped on its own (told to), as opposed to crashed.
    pub exited: bool,
    /// Incremented at each restart: events of a previous life are stale.
    pub generation: u64,
    pub sync_requested: bool,
    /// How far this machine's wall clock is from the simulation's (ns;
    /// campaigns set it and make it jump). Only masters read the wall
    /// clock; timers run on the simulation's monotonic time.
    pub wall_offset_ns: i64,
    /// Wall-clock time spent in the node's state machine (handling inputs
    /// and syncs): what scale benchmarks measure. Never fed to a node, so
    /// runs stay deterministic.
    pub work: std::time::Duration,
    /// What a restarted storage starts from.
    storage_config: Option<StorageConfig>,
    admin_config: Option<AdminConfig>,
    client_config: Option<ClientConfig>,
}

impl SimNode {
    fn new(
        name: String,
        kind: NodeKind,
        index: usize,
        address: Option<Address>,
        machine: Machine,
    ) -> SimNode {
        SimNode {
            name,
            kind,
            index,
            address,
            machine,
            alive: true,
            exited: false,
            generation: 0,
            sync_requested: false,
            wall_offset_ns: 0,
            work: std::time::Duration::ZERO,
            storage_config: None,
            admin_config: None,
            client_config: None,
        }
    }

    pub fn master(name: String, index: usize, config: MasterConfig, now: Time) -> SimNode {
        let address = Some(config.bind.clone());
        SimNode::new(
            name,
            NodeKind::Master,
            index,
            address,
            Machine::Master(Box::new(Master::new(config, now, wall_time(now, 0)))),
        )
    }

    pub fn storage(
        name: String,
        index: usize,
        config: StorageConfig,
        store: MemoryStore,
        now: Time,
    ) -> SimNode {
        let address = Some(config.bind.clone());
        let storage = Storage::new(config.clone(), store, now).expect("storage starts");
        let mut node = SimNode::new(
            name,
            NodeKind::Storage,
            index,
            address,
            Machine::Storage(Box::new(storage)),
        );
        node.storage_config = Some(config);
        node
    }

    pub fn admin(name: String, index: usize, config: AdminConfig, now: Time) -> SimNode {
        let address = Some(config.bind.clone());
        let mut node = SimNode::new(
            name,
            NodeKind::Admin,
            index,
            address,
            Machine::Admin(Box::new(Admin::new(config.clone(), now))),
        );
        node.admin_config = Some(config);
        node
    }

    pub fn client(name: String, index: usize, config: ClientConfig, now: Time) -> SimNode {
        let client = Client::new(config.clone(), now);
        let mut node = SimNode::new(
            name,
            NodeKind::Client,
            index,
            None,
            Machine::Client(Box::new(client)),
        );
        node.client_config = Some(config);
        node
    }

    pub fn ctl(name: String) -> SimNode {
        SimNode::new(name, NodeKind::Ctl, 0, None, Machine::Ctl(Ctl::default()))
    }

    pub fn handle(&mut self, now: Time, input: Input) {
        let started = std::time::Instant::now();
        self.dispatch(now, input);
        self.work += started.elapsed();
    }

    fn dispatch(&mut self, now: Time, input: Input) {
        match &mut self.machine {
            Machine::Master(m) => {
                m.observe_wall_time(wall_time(now, self.wall_offset_ns));
                m.handle(now, input)
            }
            Machine::Storage(s) => s.handle(now, input),
            Machine::Admin(a) => a.handle(now, input),
            Machine::Client(c) => c.handle(now, input),
            Machine::Ctl(c) => c.handle(input),
        }
    }

    pub fn poll_output(&mut self) -> Option<SimOutput> {
        loop {
            let output = match &mut self.machine {
                Machine::Master(m) => m.poll_output().map(convert),
                Machine::Storage(s) => s.poll_output().map(convert),
                Machine::Admin(a) => a.poll_output().map(convert),
                Machine::Client(c) => c.poll_output().map(|output| match output {
                    Output::Event(event) => Some(SimOutput::ClientEvent(event)),
                    other => convert(other),
                }),
                Machine::Ctl(c) => return c.outputs.pop_front(),
            }?;
            if let Some(output) = output {
                return Some(output);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        match &self.machine {
            Machine::Master(m) => m.poll_timeout(),
            Machine::Storage(s) => s.poll_timeout(),
            Machine::Admin(a) => a.poll_timeout(),
            Machine::Client(c) => c.poll_timeout(),
            Machine::Ctl(_) => None,
        }
    }

    pub fn sync_store(&mut self, now: Time) {
        if let Machine::Storage(s) = &mut self.machine {
            s.sync_store(now);
        }
    }

    pub fn ctl_request(&mut self, _now: Time, addr: Address, packet: Packet) {
        if let Machine::Ctl(c) = &mut self.machine {
            c.request(addr, packet);
        }
    }

    /// Dies: a storage's store loses what it had not synced.
    pub fn crash(&mut self) {
        self.alive = false;
        self.sync_requested = false;
        if let Machine::Storage(s) = &mut self.machine {
            s.store_mut().crash();
        }
    }

    /// Comes back from its durable state.
    pub fn restart(&mut self, now: Time, master_config: Option<MasterConfig>) {
        self.generation += 1;
        self.alive = true;
        self.exited = false;
        self.sync_requested = false;
        self.machine = match std::mem::replace(&mut self.machine, Machine::Ctl(Ctl::default())) {
            Machine::Master(_) => {
                let wall = wall_time(now, self.wall_offset_ns);
                Machine::Master(Box::new(Master::new(master_config.unwrap(), now, wall)))
            }
            Machine::Storage(s) => {
                let mut store = s.store().clone();
                store.crash(); // only what was durable survives
                let config = self.storage_config.clone().unwrap();
                Machine::Storage(Box::new(
                    Storage::new(config, store, now).expect("storage restarts"),
                ))
            }
            Machine::Client(_) => Machine::Client(Box::new(Client::new(
                self.client_config.clone().unwrap(),
                now,
            ))),
            Machine::Admin(_) => Machine::Admin(Box::new(Admin::new(
                self.admin_config.clone().unwrap(),
                now,
            ))),
            Machine::Ctl(c) => Machine::Ctl(c),
        };
    }

    pub fn as_master(&self) -> Option<&Master> {
        match &self.machine {
            Machine::Master(m) if self.alive => Some(m),
            _ => None,
        }
    }

    pub fn as_storage(&self) -> Option<&Storage<MemoryStore>> {
        match &self.machine {
            Machine::Storage(s) if self.alive => Some(s),
            _ => None,
        }
    }

    /// The store of a storage node (tests that corrupt it).
    pub fn store_mut(&mut self) -> Option<&mut MemoryStore> {
        match &mut self.machine {
            Machine::Storage(s) => Some(s.store_mut()),
            _ => None,
        }
    }

    pub fn as_client(&self) -> Option<&Client> {
        match &self.machine {
            Machine::Client(c) if self.alive => Some(c),
            _ => None,
        }
    }

    /// The client, to start operations (alive or not: a dead one ignores
    /// them when it restarts as a new process).
    pub fn client_mut(&mut self) -> Option<&mut Client> {
        match &mut self.machine {
            Machine::Client(c) if self.alive => Some(c),
            _ => None,
        }
    }

    pub fn as_admin(&self) -> Option<&Admin> {
        match &self.machine {
            Machine::Admin(a) if self.alive => Some(a),
            _ => None,
        }
    }
}
