// Command setpoints consumes evgrid setpoints from Kafka and decodes them without evgrid: kafka-go reads
// <prefix>evgrid.setpoints, goavro decodes the Avro single-object encoding (C3 01, the 8-byte little-endian
// CRC-64-AVRO fingerprint of the writer schema, the Avro body) against the schemas/*.avsc files.
//
//	go run . -bootstrap 127.0.0.1:9092 -prefix "" -schemas ../../../schemas -max 100
package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/segmentio/kafka-go"
)

// codecs maps a schema fingerprint (the 8 bytes after C3 01) to the codec of that writer schema.
func codecs(dir string) (map[string]*goavro.Codec, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.avsc"))
	older, _ := filepath.Glob(filepath.Join(dir, "versions", "*", "v*.avsc"))
	out := map[string]*goavro.Codec{}
	for _, f := range append(files, older...) {
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c, err := goavro.NewCodec(string(text))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		fp := make([]byte, 8) // the CRC-64-AVRO (Rabin) fingerprint of the canonical form, little-endian
		binary.LittleEndian.PutUint64(fp, c.Rabin)
		if _, dup := out[string(fp)]; !dup {
			out[string(fp)] = c
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no .avsc files in %s", dir)
	}
	return out, nil
}

func decode(value []byte, byFp map[string]*goavro.Codec) (map[string]any, error) {
	if len(value) < 10 || value[0] != 0xC3 || value[1] != 0x01 {
		return nil, errors.New("not Avro single-object encoded")
	}
	c, ok := byFp[string(value[2:10])]
	if !ok {
		return nil, fmt.Errorf("unknown schema fingerprint %s (update the .avsc files)", hex.EncodeToString(value[2:10]))
	}
	// Decoded with the writer schema; a field added in a newer version is simply absent (use its default).
	native, _, err := c.NativeFromBinary(value[10:])
	if err != nil {
		return nil, err
	}
	return native.(map[string]any), nil
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "Kafka bootstrap server")
	prefix := flag.String("prefix", "", "EVGRID_TOPIC_PREFIX of the producing deployment")
	schemas := flag.String("schemas", "schemas", "folder with the evgrid .avsc files")
	max := flag.Int("max", 0, "stop after this many messages (0 = run until idle)")
	idle := flag.Duration("idle", 10*time.Second, "stop after this long without messages")
	flag.Parse()

	byFp, err := codecs(*schemas)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{*bootstrap}, Topic: *prefix + "evgrid.setpoints",
		GroupID: fmt.Sprintf("example-go-%d", time.Now().UnixNano()), StartOffset: kafka.FirstOffset})
	defer r.Close()
	latest := map[string]int64{} // charger_id -> sequence of the newest applied setpoint
	seen, ignored := 0, 0
	for *max == 0 || seen < *max {
		ctx, cancel := context.WithTimeout(context.Background(), *idle)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(3)
		}
		seen++
		if m.Value == nil { // a tombstone: no setpoint, the charger applies its own fallback
			delete(latest, string(m.Key))
			continue
		}
		sp, err := decode(m.Value, byFp)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		charger, seq := sp["charger_id"].(string), sp["sequence"].(int64)
		if last, ok := latest[charger]; ok && seq <= last {
			ignored++ // an older or duplicate setpoint: keep the newer one already applied
			continue
		}
		latest[charger] = seq
		line, _ := json.Marshal(map[string]any{"charger_id": charger, "sequence": seq,
			"setpoint_kw": sp["setpoint_kw"], "valid_from": sp["valid_from"], "valid_until": sp["valid_until"],
			"fallback_kw": sp["fallback_kw"], "schedule_points": len(sp["schedule"].([]any)),
			"reason": sp["reason"]})
		fmt.Println(string(line))
	}
	summary, _ := json.Marshal(map[string]any{"summary": map[string]any{"messages": seen,
		"ignored_older_sequence": ignored, "chargers": len(latest)}})
	fmt.Println(string(summary))
}
