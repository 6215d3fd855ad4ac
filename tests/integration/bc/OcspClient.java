// An OCSP client built on Bouncy Castle (Debian libbcpkix-java), as Java relying parties use
// it: asks URL for the status of CERT issued by ISSUER with a CertID hashed with ALG, its
// AlgorithmIdentifier's parameters absent (RFC 5754; what Bouncy Castle sends for SHA-2) or
// NULL, and accepts the answer only as Bouncy Castle does: a SingleResponse whose CertID
// equals ours (CertificateID.equals compares the whole CertID, parameters included), signed
// by the issuer or by a responder it certified for id-kp-OCSPSigning.
//
// Usage: OcspClient ISSUER.pem CERT.pem URL sha1|sha256|sha384|sha512 absent|null OUT_PREFIX
// Writes OUT_PREFIX.req and OUT_PREFIX.resp (the DER sent and received) and prints
// "status: good|revoked|unknown"; exit 0 when the answer is accepted, 1 with the reason.
// Compiled at test time by tests/integration/test_certid.py.

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.security.Security;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.Arrays;

import org.bouncycastle.asn1.ASN1Encoding;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.oiw.OIWObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateHolder;
import org.bouncycastle.cert.ocsp.BasicOCSPResp;
import org.bouncycastle.cert.ocsp.CertificateID;
import org.bouncycastle.cert.ocsp.CertificateStatus;
import org.bouncycastle.cert.ocsp.OCSPReq;
import org.bouncycastle.cert.ocsp.OCSPReqBuilder;
import org.bouncycastle.cert.ocsp.OCSPResp;
import org.bouncycastle.cert.ocsp.RevokedStatus;
import org.bouncycastle.cert.ocsp.SingleResp;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.ContentVerifierProvider;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;

public final class OcspClient {
    private static X509Certificate load(String path) throws Exception {
        try (InputStream in = new FileInputStream(path)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static void write(String path, byte[] data) throws Exception {
        try (OutputStream out = new FileOutputStream(path)) {
            out.write(data);
        }
    }

    private static ASN1ObjectIdentifier oid(String alg) {
        switch (alg) {
        case "sha1": return OIWObjectIdentifiers.idSHA1;
        case "sha256": return NISTObjectIdentifiers.id_sha256;
        case "sha384": return NISTObjectIdentifiers.id_sha384;
        case "sha512": return NISTObjectIdentifiers.id_sha512;
        default: throw new IllegalArgumentException("unknown algorithm " + alg);
        }
    }

    private static int fail(String why) {
        System.out.println("error: " + why);
        return 1;
    }

    private static int run(String[] args) throws Exception {
        X509Certificate issuer = load(args[0]), cert = load(args[1]);
        String url = args[2], alg = args[3], params = args[4], out = args[5];
        AlgorithmIdentifier algId = params.equals("null")
            ? new AlgorithmIdentifier(oid(alg), DERNull.INSTANCE)
            : new AlgorithmIdentifier(oid(alg));
        DigestCalculatorProvider digests = new JcaDigestCalculatorProviderBuilder()
            .setProvider("BC").build();
        CertificateID id = new CertificateID(digests.get(algId),
            new JcaX509CertificateHolder(issuer), cert.getSerialNumber());
        OCSPReq req = new OCSPReqBuilder().addRequest(id).build();
        byte[] reqDer = req.getEncoded();
        write(out + ".req", reqDer);

        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        c.setConnectTimeout(20000);
        c.setReadTimeout(20000);
        c.setDoOutput(true);
        c.setRequestMethod("POST");
        c.setRequestProperty("Content-Type", "application/ocsp-request");
        c.setRequestProperty("Accept", "application/ocsp-response");
        try (OutputStream o = c.getOutputStream()) {
            o.write(reqDer);
        }
        if (c.getResponseCode() != 200)
            return fail("HTTP " + c.getResponseCode());
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        try (InputStream in = c.getInputStream()) {
            in.transferTo(body);
        }
        byte[] respDer = body.toByteArray();
        write(out + ".resp", respDer);

        OCSPResp resp = new OCSPResp(respDer);
        if (resp.getStatus() != OCSPResp.SUCCESSFUL)
            return fail("responseStatus " + resp.getStatus());
        BasicOCSPResp basic = (BasicOCSPResp) resp.getResponseObject();
        X509CertificateHolder issuerHolder = new JcaX509CertificateHolder(issuer);
        X509CertificateHolder signer = issuerHolder;
        X509CertificateHolder[] certs = basic.getCerts();
        if (certs.length > 0 && !certs[0].equals(issuerHolder)) {
            // A delegated responder: certified by the issuer for OCSP signing.
            signer = certs[0];
            ContentVerifierProvider byIssuer = new JcaContentVerifierProviderBuilder()
                .setProvider("BC").build(issuer);
            if (!signer.isSignatureValid(byIssuer))
                return fail("responder certificate not signed by the issuer");
            ExtendedKeyUsage eku = signer.getExtensions() == null ? null
                : ExtendedKeyUsage.fromExtensions(signer.getExtensions());
            if (eku == null || !eku.hasKeyPurposeId(KeyPurposeId.id_kp_OCSPSigning))
                return fail("responder certificate lacks id-kp-OCSPSigning");
        }
        if (!basic.isSignatureValid(new JcaContentVerifierProviderBuilder().setProvider("BC")
                .build(signer)))
            return fail("bad signature");
        byte[] ours = id.toASN1Primitive().getEncoded(ASN1Encoding.DER);
        for (SingleResp single : basic.getResponses()) {
            if (!single.getCertID().equals(id))
                continue;
            byte[] theirs = single.getCertID().toASN1Primitive().getEncoded(ASN1Encoding.DER);
            if (!Arrays.equals(ours, theirs))
                return fail("CertID equal but not byte for byte");
            if (single.getNextUpdate() == null || single.getNextUpdate().getTime() <
                    System.currentTimeMillis())
                return fail("nextUpdate missing or past");
            Object st = single.getCertStatus();
            System.out.println("status: " + (st == CertificateStatus.GOOD ? "good"
                : st instanceof RevokedStatus ? "revoked" : "unknown"));
            return 0;
        }
        return fail("no SingleResponse equal to our CertID");
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: OcspClient ISSUER.pem CERT.pem URL ALG absent|null OUT");
            System.exit(2);
        }
        Security.addProvider(new BouncyCastleProvider());
        System.exit(run(args));
    }
}
