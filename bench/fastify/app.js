// The Fastify + pg reference app: bench/yardstick.py's users API, as Fastify users write it.
// BENCH_DSN=postgresql://... node bench/fastify/app.js --port P --workers N
import cluster from 'node:cluster'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import pg from 'pg'

const options = { port: { type: 'string' }, workers: { type: 'string' } }
const { values: args } = parseArgs({ options })

if (cluster.isPrimary) {
  const workers = Array.from({ length: Number(args.workers) }, () => cluster.fork())
  process.on('SIGTERM', async () => {
    const running = workers.filter((worker) => !worker.isDead())
    for (const worker of running) worker.process.kill()
    await Promise.all(running.map((worker) => once(worker, 'exit')))
    process.exit(0)
  })
} else {
  pg.types.setTypeParser(20, Number) // int8 ids as JSON numbers, as asyncpg gives them
  const pool = new pg.Pool({ connectionString: process.env.BENCH_DSN, max: 16 })
  // Named statements, prepared once per connection, as asyncpg prepares every query.
  const query = async (name, text, values) => (await pool.query({ name, text, values })).rows

  const integer = { type: 'integer' }
  const user = { type: 'object', properties: { id: integer, nickname: { type: 'string' } } }
  const body = { type: 'object', required: ['name'], properties: { name: { type: 'string' } } }
  const params = { type: 'object', properties: { id: integer } }
  const page = {
    type: 'object',
    properties: { limit: { ...integer, default: 50 }, after: { ...integer, default: 0 } },
  }
  const items = { type: 'object', properties: { items: { type: 'array', items: user } } }
  const notFound = { detail: 'Not Found' } // FastAPI's HTTPException(404) body

  const app = Fastify({ logger: false })
  app.get('/users/:id', { schema: { params, response: { 200: user } } }, async (req, reply) => {
    const text = 'SELECT id, nickname FROM users WHERE id = $1'
    const [row] = await query('get', text, [req.params.id])
    return row ?? reply.code(404).send(notFound)
  })
  app.post('/users', { schema: { body, response: { 201: user } } }, async (req, reply) => {
    const text = 'INSERT INTO users (nickname) VALUES ($1) RETURNING id, nickname'
    const [row] = await query('create', text, [req.body.name])
    return reply.code(201).send(row)
  })
  const patch = { schema: { params, body, response: { 200: user } } }
  app.patch('/users/:id', patch, async (req, reply) => {
    const text = 'UPDATE users SET nickname = $2 WHERE id = $1 RETURNING id, nickname'
    const [row] = await query('rename', text, [req.params.id, req.body.name])
    return row ?? reply.code(404).send(notFound)
  })
  app.get('/users', { schema: { querystring: page, response: { 200: items } } }, async (req) => {
    const text = 'SELECT id, nickname FROM users WHERE id > $1 ORDER BY id LIMIT $2'
    return { items: await query('list', text, [req.query.after, req.query.limit]) }
  })
  await app.listen({ host: '127.0.0.1', port: Number(args.port) })
}
