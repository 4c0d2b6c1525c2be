package security

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// MySQL client/server protocol constants, as much of them as a hostile
// server needs (https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html).
const (
	myClientLongPassword          = 1 << 0 // also "this is MySQL, not MariaDB" to go-sql-driver
	myClientLongFlag              = 1 << 2
	myClientConnectWithDB         = 1 << 3
	myClientLocalFiles            = 1 << 7
	myClientProtocol41            = 1 << 9
	myClientTransactions          = 1 << 13
	myClientSecureConnection      = 1 << 15
	myClientMultiResults          = 1 << 17
	myClientPluginAuth            = 1 << 19
	myClientPluginAuthLenenc      = 1 << 21
	myComQuit                byte = 0x01
	myComQuery               byte = 0x03
	myComPing                byte = 0x0e
	myLocalInfile            byte = 0xfb
	myAuthSwitch             byte = 0xfe
)

// hostileMySQL is a MySQL server a tenant controls, on loopback. It accepts
// any credentials and answers every COM_QUERY with a LOCAL INFILE request
// for infileName, the file it wants to steal. It records everything it
// receives; a client that honoured the request would send the file's bytes
// as packets right after it.
type hostileMySQL struct {
	ln         net.Listener
	infileName string
	// authSwitch, when set, names the plugin the server switches the client
	// to after its handshake response (mysql_clear_password asks for the
	// password in clear).
	authSwitch string

	mu             sync.Mutex
	conns          int
	received       bytes.Buffer // every byte every client sent
	afterInfile    bytes.Buffer // every byte sent after a LOCAL INFILE request
	infileRequests int          // LOCAL INFILE requests sent
	dataPackets    int          // non-empty packets answering a LOCAL INFILE request
	wg             sync.WaitGroup
}

// startHostileMySQL listens on 127.0.0.1:0 and serves until the test ends.
func startHostileMySQL(t *testing.T, infileName, authSwitch string) *hostileMySQL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hostileMySQL{ln: ln, infileName: infileName, authSwitch: authSwitch}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *hostileMySQL) addr() string { return s.ln.Addr().String() }

// snapshot returns what the server saw so far.
func (s *hostileMySQL) snapshot() (conns, infileRequests, dataPackets int, received, afterInfile []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.infileRequests, s.dataPackets, bytes.Clone(s.received.Bytes()), bytes.Clone(s.afterInfile.Bytes())
}

func (s *hostileMySQL) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			// Bounded: a client that stops talking must not keep the test alive.
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_ = s.handle(&mysqlWire{conn: c, s: s})
		}()
	}
}

// mysqlWire reads and writes MySQL packets, recording what it reads.
type mysqlWire struct {
	conn    net.Conn
	s       *hostileMySQL
	seq     byte // sequence number of the next packet written
	tainted bool // a LOCAL INFILE request was sent on this connection
}

func (w *mysqlWire) read() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(w.conn, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	payload := make([]byte, n)
	if _, err := io.ReadFull(w.conn, payload); err != nil {
		return nil, err
	}
	w.seq = hdr[3] + 1
	w.s.mu.Lock()
	w.s.received.Write(hdr[:])
	w.s.received.Write(payload)
	if w.tainted {
		w.s.afterInfile.Write(hdr[:])
		w.s.afterInfile.Write(payload)
	}
	w.s.mu.Unlock()
	return payload, nil
}

func (w *mysqlWire) write(payload []byte) error {
	pkt := make([]byte, 4, 4+len(payload))
	pkt[0], pkt[1], pkt[2], pkt[3] = byte(len(payload)), byte(len(payload)>>8), byte(len(payload)>>16), w.seq
	w.seq++
	_, err := w.conn.Write(append(pkt, payload...))
	return err
}

// okPacket: header 0x00, 0 affected rows, last insert id 0, autocommit, no warnings.
var okPacket = []byte{0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}

func errPacket(msg string) []byte {
	return append([]byte{0xff, 0x17, 0x04, '#', '0', '8', 'S', '0', '1'}, msg...) // 1047 ER_UNKNOWN_COM_ERROR
}

// handshakeV10 is the server greeting: protocol 10, a 20-byte scramble for
// mysql_native_password, and the capabilities of an ordinary 5.7 server,
// CLIENT_LOCAL_FILES included.
func handshakeV10() []byte {
	caps := uint32(myClientLongPassword | myClientLongFlag | myClientConnectWithDB | myClientLocalFiles |
		myClientProtocol41 | myClientTransactions | myClientSecureConnection | myClientMultiResults |
		myClientPluginAuth | myClientPluginAuthLenenc)
	scramble := []byte("0123456789abcdefghij") // 20 bytes; no byte is 0
	var b bytes.Buffer
	b.WriteByte(10)
	b.WriteString("5.7.0-hostile\x00")
	_ = binary.Write(&b, binary.LittleEndian, uint32(7)) // connection id
	b.Write(scramble[:8])
	b.WriteByte(0)
	_ = binary.Write(&b, binary.LittleEndian, uint16(caps))
	b.WriteByte(45)                                      // utf8mb4_general_ci
	_ = binary.Write(&b, binary.LittleEndian, uint16(2)) // SERVER_STATUS_AUTOCOMMIT
	_ = binary.Write(&b, binary.LittleEndian, uint16(caps>>16))
	b.WriteByte(byte(len(scramble) + 1))
	b.Write(make([]byte, 10)) // reserved
	b.Write(scramble[8:])
	b.WriteByte(0)
	b.WriteString("mysql_native_password\x00")
	return b.Bytes()
}

func (s *hostileMySQL) handle(w *mysqlWire) error {
	if err := w.write(handshakeV10()); err != nil {
		return err
	}
	if _, err := w.read(); err != nil { // HandshakeResponse41: whatever it says
		return err
	}
	if s.authSwitch != "" {
		if err := w.write(append(append([]byte{myAuthSwitch}, s.authSwitch...), 0)); err != nil {
			return err
		}
		if _, err := w.read(); err != nil { // the client's answer to the switch
			return err
		}
	}
	if err := w.write(okPacket); err != nil {
		return err
	}
	for {
		cmd, err := w.read()
		if err != nil {
			return err
		}
		switch {
		case len(cmd) == 0:
			return errors.New("empty command")
		case cmd[0] == myComQuit:
			return nil
		case cmd[0] == myComPing:
			err = w.write(okPacket)
		case cmd[0] == myComQuery:
			err = s.requestInfile(w)
		default:
			err = w.write(errPacket("not supported by this server"))
		}
		if err != nil {
			return err
		}
	}
}

// requestInfile answers a query with LOCAL INFILE, then reads the client's
// answer: data packets, ended by an empty one. It counts the data packets,
// and answers OK as a real server would once the "file" is in.
func (s *hostileMySQL) requestInfile(w *mysqlWire) error {
	s.mu.Lock()
	s.infileRequests++
	s.mu.Unlock()
	if err := w.write(append([]byte{myLocalInfile}, s.infileName...)); err != nil {
		return err
	}
	w.tainted = true
	for {
		p, err := w.read()
		if err != nil {
			return err
		}
		if len(p) == 0 {
			return w.write(okPacket)
		}
		s.mu.Lock()
		s.dataPackets++
		s.mu.Unlock()
	}
}
