//! What a node says of itself when it identifies: the one way every node
//! kind builds a RequestIdentification, to a master or to a peer.

use bytes::Bytes;
use neo_proto::{Address, Map, Nid, NodeType, RequestIdentification, Timestamp, Value};

/// What a node says of itself in every RequestIdentification it sends.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub node_type: NodeType,
    pub cluster: Bytes,
    /// Where we listen (none for clients).
    pub address: Option<Address>,
}

impl Identity {
    /// The one way to build a RequestIdentification. `id_timestamp` is the
    /// one the master announced for us when we identify to another node,
    /// none to a master (a candidate master's election key excepted).
    pub(crate) fn request(
        &self,
        nid: Option<Nid>,
        id_timestamp: Option<Timestamp>,
        extra: Map<Bytes, Value>,
    ) -> RequestIdentification {
        RequestIdentification {
            node_type: self.node_type,
            nid,
            address: self.address.clone(),
            cluster_name: self.cluster.clone(),
            id_timestamp,
            extra,
        }
    }
}
