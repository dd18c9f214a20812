// Logs users in to a Cognito user pool with Amazon's own SRP client,
// amazon-cognito-identity-js, for auth's interoperability tests.
//
// stdin: {"endpoint": URL, "poolId": ID, "clientId": ID,
//         "cases": [{"username": U, "password": P, "refresh": bool}, ...]}
// stdout: one JSON line per case, in order:
//   {"username": U, "ok": true, "accessToken": ..., "idToken": ...,
//    "refreshToken": ..., "refreshedAccessToken": ... (when refresh)}
//   {"username": U, "ok": false, "code": "NotAuthorizedException", "message": ...}
// NODE_PATH must hold the package.
'use strict';
const { CognitoUserPool, CognitoUser, AuthenticationDetails } = require('amazon-cognito-identity-js');

function login(pool, c) {
	return new Promise(resolve => {
		const user = new CognitoUser({ Username: c.username, Pool: pool });
		user.setAuthenticationFlowType('USER_SRP_AUTH');
		const details = new AuthenticationDetails({ Username: c.username, Password: c.password });
		const fail = (err, step) => resolve({ username: c.username, ok: false, step,
			code: (err && (err.code || err.name)) || 'Error', message: (err && err.message) || String(err) });
		user.authenticateUser(details, {
			onSuccess: session => {
				const out = { username: c.username, ok: true,
					accessToken: session.getAccessToken().getJwtToken(),
					idToken: session.getIdToken().getJwtToken(),
					refreshToken: session.getRefreshToken().getToken() };
				if (!c.refresh) return resolve(out);
				user.refreshSession(session.getRefreshToken(), (err, renewed) => {
					if (err) return fail(err, 'refresh');
					out.refreshedAccessToken = renewed.getAccessToken().getJwtToken();
					resolve(out);
				});
			},
			onFailure: err => fail(err, 'login'),
			newPasswordRequired: () => fail({ code: 'NewPasswordRequired' }, 'login'),
			mfaRequired: () => fail({ code: 'MfaRequired' }, 'login'),
			totpRequired: () => fail({ code: 'TotpRequired' }, 'login'),
			customChallenge: () => fail({ code: 'CustomChallenge' }, 'login'),
		});
	});
}

async function main() {
	let input = '';
	for await (const chunk of process.stdin) input += chunk;
	const req = JSON.parse(input);
	const pool = new CognitoUserPool({ UserPoolId: req.poolId, ClientId: req.clientId, endpoint: req.endpoint });
	for (const c of req.cases) {
		process.stdout.write(JSON.stringify(await login(pool, c)) + '\n');
	}
}

// exit at once: idle keep-alive connections would hold the process open.
main().then(() => process.exit(0), err => { console.error(err); process.exit(1); });
