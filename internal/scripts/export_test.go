package scripts

import "strconv"

// genOf, fenceOf and fillOf adapt the writes' replies to the tests written before Written.
func genOf(w Written, err error) (uint64, error) { return w.Gen, err }

func fenceOf(w Written, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(w.Gen, 10), nil
}

func fillOf(w Written, ok bool, err error) (uint64, bool, error) { return w.Gen, ok, err }
