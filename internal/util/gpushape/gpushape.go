// Package gpushape normalises GPU product names, so that what a user asks
// for ("H100", "Tesla-T4") matches what NVML and NVIDIA's feature discovery
// report on a node ("NVIDIA-H100-80GB-HBM3", "Tesla-T4").
package gpushape

import "strings"

// vendorWords are dropped from product names: they name a brand or a
// product line, never the GPU model.
var vendorWords = map[string]bool{
	"NVIDIA": true, "TESLA": true, "GEFORCE": true, "QUADRO": true,
}

// joinNext are model prefixes whose number follows as a separate word
// ("RTX 4090", "RTX A6000").
var joinNext = map[string]bool{"RTX": true, "GTX": true}

// Normalize returns the short, upper-case model of a GPU product name:
//
//	"NVIDIA-H100-80GB-HBM3"   -> "H100"
//	"NVIDIA A100-SXM4-40GB"   -> "A100"
//	"Tesla-T4", "t4"          -> "T4"
//	"NVIDIA GeForce RTX 4090" -> "RTX4090"
//
// It returns "" for an empty or all-vendor name.
func Normalize(product string) string {
	words := strings.FieldsFunc(strings.ToUpper(product), func(r rune) bool {
		return r == '-' || r == ' ' || r == '_'
	})
	for i := 0; i < len(words); i++ {
		w := words[i]
		if vendorWords[w] {
			continue
		}
		if joinNext[w] && i+1 < len(words) {
			return w + words[i+1]
		}
		return w
	}
	return ""
}
