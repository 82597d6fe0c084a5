// Package s3files keeps the files of bulk imports in S3: presigned URLs for
// browsers and curl, ranged reads of an uploaded object that continue where
// a previous invocation stopped, and streamed writes that hold at most one
// part in memory whatever the file's size.
package s3files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"licenseadmin/shared/licadmin"
)

// PartSize is the size of the parts of a multipart upload; a write shorter
// than one part is a single PutObject.
const PartSize = 8 << 20

// Files reads and writes the objects of one bucket.
type Files struct {
	Client  *s3.Client
	Presign *s3.PresignClient
	Bucket  string
}

// Options returns the S3 client options for endpoint: path-style addressing
// on a local S3-compatible endpoint (empty in AWS), and checksums only when
// S3 requires them, so that presigned URLs carry no checksum of an empty
// body and any S3-compatible store accepts the requests.
func Options(endpoint string) func(*s3.Options) {
	return func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
}

// New returns the files of bucket through client.
func New(client *s3.Client, bucket string) *Files {
	return &Files{Client: client, Presign: s3.NewPresignClient(client), Bucket: bucket}
}

// PresignUpload returns a URL that PUTs the object key of the bucket with
// the Content-Type header contentType (signed: another type is refused),
// valid for ttl.
func (f *Files) PresignUpload(ctx context.Context, key, contentType string, ttl time.Duration) (string, error) {
	req, err := f.Presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket:      &f.Bucket,
		Key:         &key,
		ContentType: &contentType,
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign upload of %s: %w", key, err)
	}
	return req.URL, nil
}

// PresignDownload returns a URL that GETs the object key as an attachment
// named filename of type contentType, valid for ttl.
func (f *Files) PresignDownload(ctx context.Context, key, filename, contentType string, ttl time.Duration) (string, error) {
	req, err := f.Presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket:                     &f.Bucket,
		Key:                        &key,
		ResponseContentDisposition: aws.String(`attachment; filename="` + filename + `"`),
		ResponseContentType:        &contentType,
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign download of %s: %w", key, err)
	}
	return req.URL, nil
}

// Open returns the bytes of obj from offset on. It fails with
// licadmin.ErrImportFileChanged when the object stored at obj's key is no
// longer obj (another ETag or version), and licadmin.ErrImportFileMissing
// when there is none (S3 tells NoSuchKey only to a role that may list the
// bucket; to others it answers AccessDenied).
func (f *Files) Open(ctx context.Context, obj licadmin.ImportObject, offset int64) (io.ReadCloser, error) {
	if offset >= obj.Size {
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{Bucket: &obj.Bucket, Key: &obj.Key}
	if obj.ETag != "" {
		in.IfMatch = aws.String(`"` + obj.ETag + `"`)
	}
	if obj.VersionID != "" {
		in.VersionId = &obj.VersionID
	}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := f.Client.GetObject(ctx, in)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed":
			return nil, licadmin.ErrImportFileChanged
		case "NoSuchKey", "NoSuchVersion":
			return nil, licadmin.ErrImportFileMissing
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s from byte %d: %w", obj.Key, offset, err)
	}
	if obj.ETag != "" && strings.Trim(aws.ToString(out.ETag), `"`) != obj.ETag {
		out.Body.Close()
		return nil, licadmin.ErrImportFileChanged
	}
	return out.Body, nil
}

// Write stores at key what write writes, with contentType. The content is
// streamed: one PutObject when it fits in a part, else a multipart upload
// holding one part in memory at a time (aborted on failure).
func (f *Files) Write(ctx context.Context, key, contentType string, write func(io.Writer) error) error {
	w := &uploader{ctx: ctx, f: f, key: key, contentType: contentType}
	err := write(w)
	if err == nil {
		err = w.close()
	}
	if err != nil && w.uploadID != "" {
		_, _ = f.Client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
			Bucket: &f.Bucket, Key: &key, UploadId: &w.uploadID})
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// uploader buffers one part and sends full parts as they fill.
type uploader struct {
	ctx         context.Context
	f           *Files
	key         string
	contentType string
	buf         bytes.Buffer
	uploadID    string
	parts       []types.CompletedPart
}

func (u *uploader) Write(p []byte) (int, error) {
	n, _ := u.buf.Write(p)
	for u.buf.Len() >= PartSize {
		if err := u.sendPart(u.buf.Next(PartSize)); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (u *uploader) sendPart(b []byte) error {
	f := u.f
	if u.uploadID == "" {
		out, err := f.Client.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{
			Bucket: &f.Bucket, Key: &u.key, ContentType: &u.contentType})
		if err != nil {
			return err
		}
		u.uploadID = aws.ToString(out.UploadId)
	}
	n := int32(len(u.parts) + 1)
	out, err := f.Client.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket: &f.Bucket, Key: &u.key, UploadId: &u.uploadID, PartNumber: &n, Body: bytes.NewReader(b)})
	if err != nil {
		return err
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
	return nil
}

func (u *uploader) close() error {
	f := u.f
	if u.uploadID == "" {
		_, err := f.Client.PutObject(u.ctx, &s3.PutObjectInput{
			Bucket: &f.Bucket, Key: &u.key, ContentType: &u.contentType, Body: bytes.NewReader(u.buf.Bytes())})
		return err
	}
	if u.buf.Len() > 0 {
		if err := u.sendPart(u.buf.Bytes()); err != nil {
			return err
		}
	}
	_, err := f.Client.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &f.Bucket, Key: &u.key, UploadId: &u.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts}})
	return err
}
