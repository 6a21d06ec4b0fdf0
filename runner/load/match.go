package load

// Match reports whether key matches a Redis glob pattern (*, ?, [abc], [^a-z], \x), with the
// semantics of Redis' stringmatchlen so that --key-pattern means what it means in SCAN MATCH.
//
// Like Redis since its fix of CVE-2022-36021, it gives up on a '*' as soon as the rest of the
// pattern has failed against every suffix of the key: a longer match of an earlier '*' would
// only leave a shorter suffix for that same rest. Without this, a pattern such as
// "*a*a*a*a*a*a*a*a*b" against a long run of 'a' takes exponential time, and a key pattern of a
// RestoreSession could pin its Job.
func Match(pattern, key []byte) bool {
	var giveUp bool
	return match(pattern, key, &giveUp)
}

// match is Match; *giveUp is set when a '*' found no suffix of the key that the rest of the
// pattern matches, which ends the search of every enclosing '*' too.
func match(pattern, key []byte, giveUp *bool) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 1 && pattern[1] == '*' {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := 0; i <= len(key); i++ {
				if match(pattern[1:], key[i:], giveUp) {
					return true
				}
				if *giveUp {
					return false
				}
			}
			*giveUp = true
			return false
		case '?':
			if len(key) == 0 {
				return false
			}
			key = key[1:]
		case '[':
			if len(key) == 0 {
				return false
			}
			pattern = pattern[1:]
			not := len(pattern) > 0 && pattern[0] == '^'
			if not {
				pattern = pattern[1:]
			}
			match := false
			for len(pattern) > 0 && pattern[0] != ']' {
				switch {
				case pattern[0] == '\\' && len(pattern) >= 2:
					pattern = pattern[1:]
					if pattern[0] == key[0] {
						match = true
					}
				case len(pattern) >= 3 && pattern[1] == '-':
					lo, hi := pattern[0], pattern[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					if key[0] >= lo && key[0] <= hi {
						match = true
					}
					pattern = pattern[2:]
				default:
					if pattern[0] == key[0] {
						match = true
					}
				}
				pattern = pattern[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			key = key[1:]
			if len(pattern) == 0 {
				return len(key) == 0 // unterminated class: Redis treats the end as ']'
			}
		case '\\':
			if len(pattern) >= 2 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if len(key) == 0 || pattern[0] != key[0] {
				return false
			}
			key = key[1:]
		}
		pattern = pattern[1:]
	}
	return len(key) == 0
}
