package credentials_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
)

// A machine without a browser authorizes with the device flow: it shows
// the user a URL and a code, and waits while the user approves on another
// device. A public client (no secret) is enough.
func ExampleCredentials_ExchangeDevice() {
	ctx := context.Background()
	srv := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	defer srv.Close()
	srv.AddClient("tv-app", "")
	srv.SetDeviceFlow(time.Second, time.Minute)

	st, err := storage.Open(ctx, "memory://device-example")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	profile := &storage.Record{Profile: "default", ClientID: "tv-app", TokenURL: srv.TokenURL()}
	if _, err := st.Replace(ctx, nil, "", profile); err != nil {
		log.Fatal(err)
	}
	creds, err := credentials.New(credentials.Config{Store: st, Profile: "default"})
	if err != nil {
		log.Fatal(err)
	}
	defer creds.Close()

	da, err := creds.AuthorizeDevice(ctx, srv.DeviceAuthorizationURL())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("open %s and enter the code (%d characters)\n", da.VerificationURI[len(srv.URL):], len(da.UserCode))
	srv.ApproveDevice(da.UserCode) // the user, on their phone

	// Polls until the user decides (ErrAccessDenied), the code expires
	// (ErrDeviceCodeExpired) or ctx ends; stores the new grant.
	tok, err := creds.ExchangeDevice(ctx, da)
	if err != nil {
		log.Fatal(err)
	}
	rec, _, _ := st.Load(ctx, "default")
	fmt.Println(srv.Valid(tok.AccessToken.Reveal()), srv.ValidRefresh(rec.RefreshToken.Reveal()))
	// Output:
	// open /oauth2/device and enter the code (9 characters)
	// true true
}
