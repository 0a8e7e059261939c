package tlswire

import "github.com/mitmlab/mitmlab/capture"

// Direction is the way bytes travel on a connection, capture's own: a
// Stream is fed what capture's readers and conversations carry.
type Direction = capture.Direction

// The two directions of a connection.
const (
	ClientToServer = capture.ClientToServer
	ServerToClient = capture.ServerToClient
)
