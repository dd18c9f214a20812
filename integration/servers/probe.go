package servers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The probes below speak just enough of each protocol to tell that the
// server, not Docker's port proxy, answers. They use only the standard
// library so that importing this package does not pull in every client.

func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	return conn, nil
}

// respCommand sends one Redis command and returns its reply as text: a
// simple string, an integer, or a bulk string. An error reply is an error.
func respCommand(ctx context.Context, addr string, args ...string) (string, error) {
	conn, err := dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("redis: bad reply %q", line)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("redis: unexpected reply %q", line)
	}
}

func probeRedis(ctx context.Context, addr string) error {
	reply, err := respCommand(ctx, addr, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("redis: PING answered %q", reply)
	}
	return nil
}

func probeMemcached(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "version\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("memcached: version answered %q", line)
	}
	return nil
}

// probeMongo sends {ping: 1} to the admin database as an OP_MSG and waits
// for an OP_MSG reply whose document has ok: 1.0.
func probeMongo(ctx context.Context, addr string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()

	// BSON {ping: int32(1), $db: "admin"}.
	var doc bytes.Buffer
	doc.Write([]byte{0, 0, 0, 0}) // length, filled in below
	doc.WriteByte(0x10)           // int32
	doc.WriteString("ping\x00")
	binary.Write(&doc, binary.LittleEndian, int32(1))
	doc.WriteByte(0x02) // string
	doc.WriteString("$db\x00")
	binary.Write(&doc, binary.LittleEndian, int32(len("admin")+1))
	doc.WriteString("admin\x00")
	doc.WriteByte(0)
	d := doc.Bytes()
	binary.LittleEndian.PutUint32(d, uint32(len(d)))

	const opMsg = 2013
	var msg bytes.Buffer
	hdr := []int32{int32(16 + 4 + 1 + len(d)), 1, 0, opMsg}
	binary.Write(&msg, binary.LittleEndian, hdr)
	binary.Write(&msg, binary.LittleEndian, uint32(0)) // flag bits
	msg.WriteByte(0)                                   // section kind 0: body
	msg.Write(d)
	if _, err := conn.Write(msg.Bytes()); err != nil {
		return err
	}

	var reply [4]int32
	if err := binary.Read(conn, binary.LittleEndian, &reply); err != nil {
		return err
	}
	if reply[3] != opMsg || reply[0] < 16 || reply[0] > 1<<20 {
		return fmt.Errorf("mongo: unexpected reply header %v", reply)
	}
	body := make([]byte, reply[0]-16)
	if _, err := io.ReadFull(conn, body); err != nil {
		return err
	}
	// ok: double 1.0 is 0x01 "ok\x00" followed by 1.0's little-endian bytes.
	if !bytes.Contains(body, []byte{0x01, 'o', 'k', 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}) {
		return errors.New("mongo: ping not ok")
	}
	return nil
}

// probeKMS calls ListKeys, which local-kms answers without credentials.
func probeKMS(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kms: ListKeys answered %s", resp.Status)
	}
	return nil
}
