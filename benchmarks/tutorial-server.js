// The tutorial's Node.js signaling server (seeds/000_233d9f7c3c33040d.txt), reimplemented
// faithfully as the baseline for scripts/bench_signaling.py. Same `ws` package, same
// `users` object, same message handling; the differences, all outside the relay path:
//   - the port comes from the command line (the tutorial hard-codes 8080),
//   - it prints one line once it listens, so the benchmark knows when to start,
//   - `--quiet` drops the tutorial's per-message console.log (the benchmark uses it, so
//     Node is measured at its fastest),
//   - the close paths check that the other user still exists before touching it (the
//     tutorial dereferences users[otherUsername] first and would crash the process).
//
//   node benchmarks/tutorial-server.js [--quiet] [PORT]

const WebSocket = require('ws')

const args = process.argv.slice(2)
const quiet = args.includes('--quiet')
const port = Number(args.find((arg) => arg !== '--quiet') || 8080)
const log = quiet ? () => {} : console.log

const wss = new WebSocket.Server({ host: '127.0.0.1', port })

const users = {}

const sendTo = (ws, message) => {
  ws.send(JSON.stringify(message))
}

wss.on('listening', () => {
  console.log(`tutorial-server: listening on ws://127.0.0.1:${wss.address().port}/`)
})

wss.on('connection', (ws) => {
  log('User connected')

  ws.on('message', (message) => {
    let data = null

    try {
      data = JSON.parse(message)
    } catch (error) {
      log('Invalid JSON', error)
      data = {}
    }

    switch (data.type) {
      case 'login':
        log('User logged', data.username)
        if (users[data.username]) {
          sendTo(ws, { type: 'login', success: false })
        } else {
          users[data.username] = ws
          ws.username = data.username
          sendTo(ws, { type: 'login', success: true })
        }
        break
      case 'offer':
        log('Sending offer to: ', data.otherUsername)
        if (users[data.otherUsername] != null) {
          ws.otherUsername = data.otherUsername
          sendTo(users[data.otherUsername], {
            type: 'offer',
            offer: data.offer,
            username: ws.username,
          })
        }
        break
      case 'answer':
        log('Sending answer to: ', data.otherUsername)
        if (users[data.otherUsername] != null) {
          ws.otherUsername = data.otherUsername
          sendTo(users[data.otherUsername], {
            type: 'answer',
            answer: data.answer,
          })
        }
        break
      case 'candidate':
        log('Sending candidate to:', data.otherUsername)
        if (users[data.otherUsername] != null) {
          sendTo(users[data.otherUsername], {
            type: 'candidate',
            candidate: data.candidate,
          })
        }
        break
      case 'close':
        log('Disconnecting from', data.otherUsername)
        if (users[data.otherUsername] != null) {
          users[data.otherUsername].otherUsername = null
          sendTo(users[data.otherUsername], { type: 'close' })
        }
        break
      default:
        sendTo(ws, {
          type: 'error',
          message: 'Command not found: ' + data.type,
        })
        break
    }
  })

  ws.on('close', () => {
    if (ws.username) {
      delete users[ws.username]

      if (ws.otherUsername) {
        log('Disconnecting from ', ws.otherUsername)
        if (users[ws.otherUsername] != null) {
          users[ws.otherUsername].otherUsername = null
          sendTo(users[ws.otherUsername], { type: 'close' })
        }
      }
    }
  })
})
