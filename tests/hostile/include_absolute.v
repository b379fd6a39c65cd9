// Pulls a file outside the sample dir into the design at compile time.
`include "@CANARY@"
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endmodule
