package sshcmd_test

import (
	"net/http"
	"net/http/httptest"
)

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newRequest(host string) *http.Request {
	return httptest.NewRequest("GET", "http://"+host+"/", nil)
}
