package capi

import "testing"

func BenchmarkNormalizeAndHash(b *testing.B) {
	for _, c := range []struct{ k, v string }{
		{"em", "Jane.Doe@Example.com"}, {"ph", "+1 (650) 555-1234"}, {"fn", "Jane"}, {"ln", "Doe"},
		{"ct", "San Francisco"}, {"external_id", "42"},
	} {
		b.Run(c.k, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := NormalizeAndHash(c.k, c.v, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
