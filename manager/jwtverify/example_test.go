package jwtverify_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessiond/sessiond/manager/jwtverify"
)

func Example() {
	secret := []byte("an HS256 secret of at least 32 bytes!")
	v, err := jwtverify.New(context.Background(), jwtverify.Config{
		HMACSecrets: [][]byte{secret},
		Issuer:      "https://auth.example.com",
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	// A token as the app's identity provider would issue it.
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user-42",
		"iss": "https://auth.example.com",
		"exp": time.Now().Add(15 * time.Minute).Unix(),
	}).SignedString(secret)

	claims, err := v.Verify(token)
	switch {
	case errors.Is(err, jwtverify.ErrExpired):
		fmt.Println("expired: refresh for", claims.UserID)
	case err != nil:
		fmt.Println("rejected:", err)
	default:
		fmt.Println("user:", claims.UserID)
	}

	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "admin",
		"iss": "https://auth.example.com",
		"exp": time.Now().Add(15 * time.Minute).Unix(),
	}).SignedString([]byte("a guessed secret, also 32 bytes long"))
	_, err = v.Verify(forged)
	fmt.Println(err)
	// Output:
	// user: user-42
	// jwtverify: invalid token: token signature is invalid
}
