package v1alpha1

import (
	"net"
	"net/url"
	"regexp"
	"strings"
)

// S3EndpointProblem says what is wrong with endpoint as the endpoint of an S3 backend, or ""
// when nothing is. Admission, `kubectl stash validate` and the runner's s3:// URLs share it.
//
// Credentials in the endpoint are refused: they would be stored in the Repository for anyone
// who can read it, and printed wherever the URL is; they belong in the storage Secret. A
// link-local address (169.254.169.254, fe80::/10, AWS's fd00:ec2::254) is the cloud's instance
// metadata service, never an S3 endpoint: a Repository pointing there would make the runner
// send requests, with the Pod's network identity, to the service that hands out its
// credentials.
func S3EndpointProblem(endpoint string) string {
	u, err := url.Parse(endpoint)
	switch {
	case !strings.Contains(endpoint, "://"):
		return "must start with http:// or https://"
	case err != nil || u.Host == "":
		return "must be a URL such as https://s3.amazonaws.com or http://minio.storage:9000"
	case u.Scheme != "http" && u.Scheme != "https":
		return "scheme must be http or https"
	case u.User != nil:
		return "must not hold a user name or password; put the access keys in the storage Secret (" +
			SecretKeyAWSAccessKeyID + ", " + SecretKeyAWSSecretAccessKey + ")"
	case u.Path != "" && u.Path != "/":
		return "must not have a path; put the bucket in bucket and the directory in prefix"
	}
	if ip := net.ParseIP(strings.Trim(u.Hostname(), "[]")); ip != nil && (ip.IsLinkLocalUnicast() || ip.Equal(awsIPv6Metadata)) {
		return "is a link-local address, where the cloud's instance metadata service answers, not an S3 endpoint"
	}
	return ""
}

var awsIPv6Metadata = net.ParseIP("fd00:ec2::254")

// RedactURL returns raw with the user information of the URL, and of any URL among its query
// values (an s3:// repository URL's endpoint), replaced by "redacted". A string that does not
// parse has everything between "://" and its last "@" replaced. It is the one function that
// makes a URL fit for a message, a log line or a status.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		// No scheme ("user:password@host:6379"): url.Parse would take "user" for the scheme and
		// the password for an opaque part; whatever precedes the last @ is credentials.
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "redacted" + raw[i:]
		}
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return looseUserInfo.ReplaceAllString(raw, "://redacted@")
	}
	changed := false
	if u.User != nil {
		u.User, changed = url.User("redacted"), true
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery, changed = looseUserInfo.ReplaceAllString(u.RawQuery, "://redacted@"), true
		} else {
			for _, vs := range q {
				for i, v := range vs {
					if strings.Contains(v, "@") {
						if r := RedactURL(v); r != v {
							vs[i], changed = r, true
						}
					}
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// looseUserInfo is the user information of a URL that does not parse: from "://" to the last
// "@" before the next space.
var looseUserInfo = regexp.MustCompile(`://[^\s]*@`)
