package rdb

import "fmt"

// lzfDecompress expands LZF data (liblzf's format, which Redis uses for long strings) that
// must come to size bytes. The output grows as the input produces it, so a claimed size larger
// than the data allows costs nothing.
func lzfDecompress(in []byte, size uint64) ([]byte, error) {
	out := make([]byte, 0, min(size, chunk))
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 { // a literal run of ctrl+1 bytes
			n := ctrl + 1
			if i+n > len(in) {
				return nil, fmt.Errorf("lzf: literal past the end of the data")
			}
			out = append(out, in[i:i+n]...)
			i += n
		} else { // a back reference
			n := ctrl >> 5
			if n == 7 {
				if i >= len(in) {
					return nil, fmt.Errorf("lzf: truncated back reference")
				}
				n += int(in[i])
				i++
			}
			if i >= len(in) {
				return nil, fmt.Errorf("lzf: truncated back reference")
			}
			ref := len(out) - (ctrl&0x1f)<<8 - int(in[i]) - 1
			i++
			if ref < 0 {
				return nil, fmt.Errorf("lzf: back reference before the start")
			}
			for range n + 2 { // byte by byte: the copy may overlap its own output
				out = append(out, out[ref])
				ref++
			}
		}
		if uint64(len(out)) > size {
			return nil, fmt.Errorf("lzf: data longer than the %d bytes claimed", size)
		}
	}
	if uint64(len(out)) != size {
		return nil, fmt.Errorf("lzf: %d bytes, %d claimed", len(out), size)
	}
	return out, nil
}
