package mysqlbinlog

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/capisync/capisync/internal/cdc"
)

// TestCompressedTransactionPayload: MySQL with binlog_transaction_compression
// sends a transaction's events after its GTID inside one payload event,
// which the library decompresses into the events it holds. The reader reads
// them as the same events sent one by one: the same changes, positions and
// checkpoint. (MariaDB writes no payload events; the transaction here is
// MariaDB's, wrapped as MySQL wraps its own.)
func TestCompressedTransactionPayload(t *testing.T) {
	r := newRig(t, shopDDL)
	flavor := flavorOf(t, r.db)
	from := r.now()
	r.tx(fmt.Sprintf("INSERT INTO %s VALUES (1, 'new', 'a@example.com', 10.50), (2, 'new', NULL, NULL)", r.table),
		fmt.Sprintf("UPDATE %s SET status = 'qualified' WHERE id = 1", r.table),
		fmt.Sprintf("DELETE FROM %s WHERE id = 2", r.table))
	events := transactionEvents(t, r, flavor, from)

	cs, err := charsets(context.Background(), r.db)
	if err != nil {
		t.Fatal(err)
	}
	start, err := parsePosition(from)
	if err != nil {
		t.Fatal(err)
	}
	read := func(evs []*replication.BinlogEvent) []cdc.Batch {
		out := make(chan cdc.Batch, len(evs))
		sent := &start
		rd := reader{s: r.src, out: out, pos: start, shapes: map[uint64]*shape{}, sent: &sent, charsets: cs}
		for _, ev := range evs {
			if err := rd.handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		close(out)
		var got []cdc.Batch
		for b := range out {
			got = append(got, b)
		}
		return got
	}
	plain := read(events)
	payload := read([]*replication.BinlogEvent{events[0], {
		Header: &replication.EventHeader{EventType: replication.TRANSACTION_PAYLOAD_EVENT},
		Event:  &replication.TransactionPayloadEvent{CompressionType: replication.ZSTD, Events: events[1:]},
	}})
	if len(plain) != 1 || len(plain[0].Changes) != 4 || plain[0].Position == nil {
		t.Fatalf("the transaction sent as it is: %v", plain)
	}
	if !reflect.DeepEqual(payload, plain) {
		t.Errorf("the transaction in a payload read as\n%v\nwant\n%v", payload, plain)
	}
}

// transactionEvents reads the binlog from from and returns the events of
// the first transaction after it, its GTID event first and its commit last.
func transactionEvents(t *testing.T, r *rig, flavor string, from cdc.Position) []*replication.BinlogEvent {
	t.Helper()
	start, err := parsePosition(from)
	if err != nil {
		t.Fatal(err)
	}
	syncer := replication.NewBinlogSyncer(r.src.syncerConfig(server{flavor: flavor}))
	defer syncer.Close()
	streamer, err := syncer.StartSync(gomysql.Position{Name: start.File, Pos: start.Pos})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var evs []*replication.BinlogEvent
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			t.Fatalf("after %d events of the transaction: %v", len(evs), err)
		}
		switch ev.Event.(type) {
		case *replication.MariadbGTIDEvent, *replication.GTIDEvent:
			evs = []*replication.BinlogEvent{ev}
		case *replication.RotateEvent, *replication.FormatDescriptionEvent, *replication.HeartbeatEvent,
			*replication.MariadbGTIDListEvent, *replication.MariadbBinlogCheckPointEvent:
		case *replication.XIDEvent:
			if len(evs) > 0 {
				return append(evs, ev)
			}
		default:
			if len(evs) > 0 {
				evs = append(evs, ev)
			}
		}
	}
}
